/* pshm — placeholder until the CLI lands (issue 2). */
#include "pshm.h"
#include <stdio.h>
int main(void)
{
    fprintf(stderr, "pshm: CLI not built yet\n");
    return 2;
}
