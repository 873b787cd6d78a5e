/*
 * pshm — command-line front end to the pshm library.
 *
 * A thin layer: every command parses its arguments with getopt_long and
 * calls the public API (pshm.h). Exit status: 0 success, 1 failure (the
 * library's message on stderr), 2 usage error. See `pshm --help`.
 */
#include "pshm.h"

/* The format archetype of the C99 printf in use (mingw-w64's, on Windows). */
#ifdef _WIN32
#define CLI_PRINTF gnu_printf
#else
#define CLI_PRINTF printf
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <signal.h>
#include <unistd.h>

/* What the CLI asks of the system beyond C and the library: a user's name,
 * random bytes for a fresh manager key, binary stdio, and whether a block
 * outlives the process that made it (on Windows it goes with its last
 * handle, so a command that makes one must hold it). */
#ifdef _WIN32
static const bool BLOCKS_OUTLIVE_PROCESSES = false;

#include <windows.h>

#include <bcrypt.h>
#include <io.h>
#include <process.h>

/* The manager server pshm_manager_start runs as `pshm.exe
 * --pshm-manager-server` (src/win/manager.c; in libpshm.a, not exported). */
int pshm_win_manager_server_main(void);

/* Windows blocks carry no owner (pshm_block_stat says uid 0). */
static const char *user_name(uint32_t uid)
{
    (void)uid;
    return NULL;
}

/* Bytes in and out as on Linux: no CR LF translation on stdin or stdout. */
static void binary_stdio(void)
{
    _setmode(_fileno(stdin), _O_BINARY);
    _setmode(_fileno(stdout), _O_BINARY);
}

static bool random_bytes(void *buf, size_t n)
{
    return BCRYPT_SUCCESS(
        BCryptGenRandom(NULL, buf, (ULONG)n, BCRYPT_USE_SYSTEM_PREFERRED_RNG));
}

/* Where a generated key file goes when TMPDIR is not set. */
static const char *temp_dir(void)
{
    const char *dir = getenv("TEMP");
    return dir != NULL && *dir != '\0' ? dir : ".";
}
#else
static const bool BLOCKS_OUTLIVE_PROCESSES = true;
#include <pwd.h>
#include <sys/random.h>
#include <sys/wait.h>

/* The user name for uid, or NULL if the system does not know it. */
static const char *user_name(uint32_t uid)
{
    struct passwd *pw = getpwuid((uid_t)uid);
    return pw != NULL ? pw->pw_name : NULL;
}

static bool random_bytes(void *buf, size_t n) { return getrandom(buf, n, 0) == (ssize_t)n; }

static void binary_stdio(void) {}

static const char *temp_dir(void) { return "/tmp"; }
#endif

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* What an argument parser returns after printing --help: stop, exit 0. */
enum { HELP_SHOWN = -1 };

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------ */
/* Help texts                                                                */
/* ------------------------------------------------------------------------ */

static const char MAIN_HELP[] =
    "usage: pshm COMMAND [ARGS...]\n"
    "\n"
    "Named shared memory blocks, compatible with Python's\n"
    "multiprocessing.shared_memory.\n"
    "\n"
    "commands:\n"
    "  create    create a block and print its name\n"
    "  attach    attach to a block and hold it open\n"
    "  info      describe a block\n"
    "  ls        list the blocks this user can see\n"
    "  read      copy a block's bytes to stdout\n"
    "  write     copy stdin into a block\n"
    "  rm        remove blocks\n"
    "  list      shareable lists (new, show, get, set, format)\n"
    "  manager   run or talk to a manager server\n"
    "  lock      run a command while holding a named lock\n"
    "\n"
    "Run 'pshm COMMAND --help' for a command's options. Sizes and offsets are\n"
    "bytes, optionally with a suffix K, M or G (KiB, MiB, GiB). Put '--' before\n"
    "arguments that start with '-', such as negative list indices.\n"
    "\n"
    "options:\n"
    "  --help     show this help\n"
    "  --version  show the version\n";

static const char CREATE_HELP[] =
    "usage: pshm create [--name NAME] --size BYTES [--populate] [--track] [--hold]\n"
    "\n"
    "Create a block (zero-filled, mode 0600) and print its name.\n"
    "\n"
    "  --name NAME    the block's name (default: a random psm_XXXXXXXX)\n"
    "  --size BYTES   its size; suffixes K, M, G allowed\n"
    "  --populate     reserve and pre-fault every page now\n"
    "  --hold         keep the block open until stdin reaches EOF or the\n"
    "                 process is killed; never unlinks it\n"
    "  --track        with --hold: mark the block for cleanup; the resource\n"
    "                 tracker removes it once every holder (this one and\n"
    "                 any that attached) is gone\n"
    "\n"
    "Without --track the block is untracked: it stays until 'pshm rm'.\n";

static const char ATTACH_HELP[] =
    "usage: pshm attach NAME --hold [--no-track] [--readonly]\n"
    "\n"
    "Attach to a block, print its name, and hold it open until stdin reaches\n"
    "EOF or the process is killed. Never unlinks it.\n"
    "\n"
    "  --hold       hold the handle (required)\n"
    "  --no-track   do not register with this process's resource tracker\n"
    "\n"
    "Whether the block is removed once its last holder is gone was decided by\n"
    "its creator ('pshm create --track', or a program's tracked create);\n"
    "attaching never changes that. Blocks made untracked, or by other tools\n"
    "such as CPython, are never removed by the tracker.\n"
    "  --readonly   map the block read-only\n";

static const char INFO_HELP[] =
    "usage: pshm info NAME [--json]\n"
    "\n"
    "Print a block's name, size, mode and owner. The name is escaped as\n"
    "'pshm ls' shows it (see 'pshm ls --help').\n"
    "\n"
    "  --json   print one JSON object\n";

static const char LS_HELP[] =
    "usage: pshm ls [--json]\n"
    "\n"
    "List the blocks this user can see: NAME SIZE MODE OWNER. In a name,\n"
    "control characters and bytes that are not UTF-8 are shown escaped, as\n"
    "'ls -b' does but in hex: \\n, \\r, \\t, ... or \\xHH; a backslash as \\\\.\n"
    "\n"
    "  --json   print a JSON array of objects\n";

static const char READ_HELP[] =
    "usage: pshm read NAME [--offset BYTES] [--length BYTES]\n"
    "\n"
    "Write a block's bytes to stdout, from --offset (default 0) for --length\n"
    "bytes (default: to the end). The range must lie within the block.\n";

static const char WRITE_HELP[] =
    "usage: pshm write NAME [--offset BYTES]\n"
    "\n"
    "Copy stdin into the block at --offset (default 0). If the input would\n"
    "run past the end of the block, or /dev/shm has no room left for the\n"
    "pages it covers, nothing is written.\n";

static const char RM_HELP[] =
    "usage: pshm rm NAME...\n"
    "\n"
    "Remove each named block. Reports every failure; exit status 1 if any.\n";

static const char LOCK_HELP[] =
    "usage: pshm lock NAME [--shared] [--timeout SECONDS] -- COMMAND [ARGS...]\n"
    "\n"
    "Run COMMAND while holding the named lock NAME, as flock(1) does, and\n"
    "exit with its status (128 + the signal if a signal ended it). The lock is\n"
    "a small block made on first use and removed by the resource tracker once\n"
    "no process has it open. A holder that dies (even by SIGKILL) never blocks\n"
    "the next one, which is told so on stderr.\n"
    "\n"
    "  --shared            take it shared (any number of shared holders, no\n"
    "                      exclusive one); default: exclusive\n"
    "  --timeout SECONDS   give up after SECONDS (decimals allowed; 0: try\n"
    "                      once) and exit with status 1; default: wait\n";

static const char LIST_HELP[] =
    "usage: pshm list SUBCOMMAND ...\n"
    "\n"
    "Shareable lists, byte-compatible with Python's ShareableList.\n"
    "\n"
    "  new [--name NAME] VALUE...   create an untracked list; print its name\n"
    "  show NAME                    print the list as Python's repr() does\n"
    "  get NAME INDEX               print repr() of one item\n"
    "  set NAME INDEX VALUE         store a value\n"
    "  format NAME                  print the list's struct format\n"
    "\n"
    "VALUEs are Python literals: 42, -1.5, inf, nan, 'text', b'bytes', None,\n"
    "True, False. Quote them for the shell: pshm list new 1 \"'two'\" None.\n"
    "Negative INDEXes count from the end; put '--' before them.\n";

static const char LIST_NEW_HELP[] =
    "usage: pshm list new [--name NAME] [--] VALUE...\n"
    "\n"
    "Create an untracked list holding the VALUEs (Python literals) and print\n"
    "its name.\n";

static const char LIST_SHOW_HELP[] =
    "usage: pshm list show NAME\n"
    "\n"
    "Print the list exactly as Python's repr(ShareableList(name=NAME)).\n";

static const char LIST_GET_HELP[] =
    "usage: pshm list get NAME [--] INDEX\n"
    "\n"
    "Print repr() of item INDEX (negative counts from the end).\n";

static const char LIST_SET_HELP[] =
    "usage: pshm list set NAME [--] INDEX VALUE\n"
    "\n"
    "Store VALUE (a Python literal) at INDEX (negative counts from the end).\n";

static const char LIST_FORMAT_HELP[] =
    "usage: pshm list format NAME\n"
    "\n"
    "Print the list's struct format, as Python's ShareableList.format.\n";

static const char MANAGER_HELP[] =
    "usage: pshm manager serve [--address ADDR] [--authkey-file FILE]\n"
    "       pshm manager --address ADDR --authkey-file FILE SUBCOMMAND ...\n"
    "\n"
    "A manager server owns blocks for its clients and removes them all when\n"
    "it shuts down (Python's SharedMemoryManager).\n"
    "\n"
    "  serve                run a server in the foreground (see serve --help)\n"
    "  block --size BYTES   have the server create a block; print its name\n"
    "  list VALUE...        have the server create a list; print its name\n"
    "  ls                   print the names the server owns, one a line\n"
    "  release NAME         have the server remove one of its blocks\n"
    "  shutdown             have the server remove its blocks and exit\n"
    "\n"
    "  --address ADDR       unix:PATH, tcp:HOST:PORT or (Windows) pipe:NAME;\n"
    "                       default: the environment variable\n"
    "                       PSHM_MANAGER_ADDRESS\n"
    "  --authkey-file FILE  file holding the key's raw bytes; default: the\n"
    "                       environment variable PSHM_AUTHKEY_FILE\n";

static const char SERVE_HELP[] =
    "usage: pshm manager serve [--address ADDR] [--authkey-file FILE]\n"
    "\n"
    "Run a manager server in the foreground until a client asks it to shut\n"
    "down or SIGTERM/SIGINT arrives; then it removes every block it owns.\n"
    "The first line on stdout is the address clients connect to.\n"
    "\n"
    "  --address ADDR       unix:PATH, tcp:HOST:PORT (port 0 picks a free\n"
    "                       one) or (Windows) pipe:NAME; default:\n"
    "                       PSHM_MANAGER_ADDRESS, else a fresh Unix socket in\n"
    "                       a private directory (on Windows a fresh pipe)\n"
    "  --authkey-file FILE  file holding the key's raw bytes; default:\n"
    "                       PSHM_AUTHKEY_FILE\n"
    "\n"
    "With neither, a random 32-byte key is written to a new file (mode 0600)\n"
    "whose path is printed on stderr; the file is removed when the server\n"
    "exits normally.\n";

static const char MANAGER_BLOCK_HELP[] =
    "usage: pshm manager [OPTIONS] block --size BYTES\n"
    "\n"
    "Have the server create a block; print its name.\n";

static const char MANAGER_LIST_HELP[] =
    "usage: pshm manager [OPTIONS] list [--] VALUE...\n"
    "\n"
    "Have the server create a list of the VALUEs (Python literals); print its\n"
    "name.\n";

static const char MANAGER_LS_HELP[] =
    "usage: pshm manager [OPTIONS] ls\n"
    "\n"
    "Print the names of the blocks the server owns, one a line.\n";

static const char MANAGER_RELEASE_HELP[] =
    "usage: pshm manager [OPTIONS] release NAME\n"
    "\n"
    "Have the server remove one of its blocks.\n";

static const char MANAGER_SHUTDOWN_HELP[] =
    "usage: pshm manager [OPTIONS] shutdown\n"
    "\n"
    "Have the server remove every block it owns and exit.\n";

/* ------------------------------------------------------------------------ */
/* Diagnostics                                                               */
/* ------------------------------------------------------------------------ */

/* Print "pshm: MESSAGE" on stderr; return EXIT_FAIL. */
static int failf(const char *fmt, ...) __attribute__((format(CLI_PRINTF, 1, 2)));
static int failf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("pshm: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_FAIL;
}

/* Report the library's last failure; return EXIT_FAIL. */
static int fail(void) { return failf("%s", pshm_last_error()); }

/*
 * Print "pshm CMD: MESSAGE" and a hint on stderr; return EXIT_USAGE. cmd
 * NULL means pshm itself.
 */
static int usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(CLI_PRINTF, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...)
{
    const char *space = cmd != NULL ? " " : "";
    cmd = cmd != NULL ? cmd : "";
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "pshm%s%s: ", space, cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'pshm%s%s --help'.\n", space, cmd);
    va_end(ap);
    return EXIT_USAGE;
}

/* Print a help text; return HELP_SHOWN. */
static int show_help(const char *text)
{
    fputs(text, stdout);
    return HELP_SHOWN;
}

/* The exit status for what a parser or command returned. */
static int exit_status(int status) { return status == HELP_SHOWN ? EXIT_OK : status; }

/* ------------------------------------------------------------------------ */
/* Option parsing                                                            */
/* ------------------------------------------------------------------------ */

/* Short options: only -h. A leading ':' reports a missing argument as ':'. */
#define SHORT_OPTIONS ":h"

#define HELP_OPTION                                                                          \
    {                                                                                        \
        "help", no_argument, NULL, 'h'                                                       \
    }

/* Restart getopt_long on a new argument vector, silently. */
static void options_begin(void)
{
    optind = 0;
    opterr = 0;
}

/*
 * The usage error for what getopt_long returned as `opt`: ':' (a long
 * option without its argument) or '?' (unknown; optopt is the character of
 * an unknown short option, 0 for a long one).
 */
static int bad_option(const char *cmd, int opt, char **argv)
{
    if (opt == ':')
        return usage_error(cmd, "option '%s' needs an argument", argv[optind - 1]);
    if (optopt == 0)
        return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
    if (optopt >= '0' && optopt <= '9')
        return usage_error(cmd, "unknown option '-%c' (put '--' before negative numbers)",
                           optopt);
    return usage_error(cmd, "unknown option '-%c'", optopt);
}

/* Check the number of positional arguments left after the options. */
static int expect_operands(const char *cmd, int argc, size_t min, size_t max)
{
    size_t have = (size_t)(argc - optind);
    if (have < min)
        return usage_error(cmd, "missing argument");
    if (have > max)
        return usage_error(cmd, "too many arguments");
    return EXIT_OK;
}

/* Multiplier for a size suffix: none, K, M, G, KiB, MiB, GiB; 0 if unknown. */
static uint64_t suffix_multiplier(const char *suffix)
{
    static const struct {
        const char *short_form, *long_form;
        uint64_t factor;
    } units[] = {{"", "", 1},
                 {"K", "KiB", 1ull << 10},
                 {"M", "MiB", 1ull << 20},
                 {"G", "GiB", 1ull << 30}};
    for (size_t i = 0; i < ARRAY_LEN(units); i++)
        if (strcmp(suffix, units[i].short_form) == 0 ||
            strcmp(suffix, units[i].long_form) == 0)
            return units[i].factor;
    return 0;
}

/* Parse a byte count: decimal digits, optional K/M/G suffix. */
static int parse_size(const char *cmd, const char *what, const char *text, size_t *out)
{
    if (text[0] < '0' || text[0] > '9')
        return usage_error(cmd, "%s '%s' is not a non-negative number of bytes", what, text);
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    uint64_t factor = suffix_multiplier(end);
    if (factor == 0)
        return usage_error(cmd, "%s '%s': unknown suffix (use K, M or G)", what, text);
    if (errno == ERANGE || value > SIZE_MAX / factor)
        return usage_error(cmd, "%s '%s' is too large", what, text);
    *out = (size_t)(value * factor);
    return EXIT_OK;
}

/* Parse a list index: a decimal int64, possibly negative. */
static int parse_index(const char *cmd, const char *text, int64_t *out)
{
    const char *digits = text[0] == '-' ? text + 1 : text;
    if (digits[0] < '0' || digits[0] > '9')
        return usage_error(cmd, "index '%s' is not an integer", text);
    char *end;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (*end != '\0')
        return usage_error(cmd, "index '%s' is not an integer", text);
    if (errno == ERANGE)
        return usage_error(cmd, "index '%s' is out of range", text);
    *out = (int64_t)value;
    return EXIT_OK;
}

static void free_values(pshm_value *values, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pshm_value_free(&values[i]);
    free(values);
}

/* Parse Python literals into a malloc'd array; release with free_values. */
static int parse_values(const char *cmd, char **literals, size_t n, pshm_value **out)
{
    pshm_value *values = calloc(n ? n : 1, sizeof *values);
    if (values == NULL)
        return failf("%s: out of memory", cmd);
    for (size_t i = 0; i < n; i++) {
        if (pshm_value_parse(literals[i], &values[i]) < 0) {
            int status = usage_error(cmd, "%s", pshm_last_error());
            free_values(values, i);
            return status;
        }
    }
    *out = values;
    return EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* Input and output                                                          */
/* ------------------------------------------------------------------------ */

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t done = write(fd, p, len);
        if (done < 0 && errno == EINTR)
            continue;
        if (done < 0)
            return -1;
        p += done;
        len -= (size_t)done;
    }
    return 0;
}

/* Make room for at least one more byte in buf, never beyond limit. */
static int grow_buffer(char **buf, size_t *cap, size_t limit)
{
    size_t want = *cap == 0 ? 65536 : *cap * 2;
    want = want < limit ? want : limit;
    char *bigger = realloc(*buf, want);
    if (bigger == NULL)
        return -1;
    *buf = bigger;
    *cap = want;
    return 0;
}

/*
 * Read stdin into *out (malloc'd; free it either way) until EOF or until it
 * holds `limit` bytes (limit > 0). -1 with errno set on failure.
 */
static int read_stdin(size_t limit, char **out, size_t *len)
{
    size_t cap = 0;
    *out = NULL;
    *len = 0;
    while (*len < limit) {
        if (*len == cap && grow_buffer(out, &cap, limit) < 0)
            return -1;
        ssize_t got = read(STDIN_FILENO, *out + *len, cap - *len);
        if (got == 0)
            break;
        if (got < 0 && errno != EINTR)
            return -1;
        *len += got > 0 ? (size_t)got : 0;
    }
    return 0;
}

/* Keep whatever handle the caller holds until stdin reaches EOF. */
static void wait_for_stdin_eof(void)
{
    char buf[256];
    for (;;) {
        ssize_t got = read(STDIN_FILENO, buf, sizeof buf);
        if (got == 0 || (got < 0 && errno != EINTR))
            return;
    }
}

static void print_line(const char *text)
{
    printf("%s\n", text);
    fflush(stdout);
}

/*
 * Length of the valid UTF-8 sequence at s (1 to 4), or 0 if the bytes there
 * are not valid UTF-8 (overlong forms, surrogates, beyond U+10FFFF).
 */
static size_t utf8_sequence_length(const unsigned char *s)
{
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        len = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        lo = s[0] == 0xE0 ? 0xA0 : 0x80;
        hi = s[0] == 0xED ? 0x9F : 0xBF;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        lo = s[0] == 0xF0 ? 0x90 : 0x80;
        hi = s[0] == 0xF4 ? 0x8F : 0xBF;
    } else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

/*
 * Print text as a JSON string. Bytes that are not UTF-8 become lone
 * surrogates \udc80-\udcff, as Python's os.fsdecode maps them, so a name
 * round-trips to what os.listdir("/dev/shm") reports.
 */
static void print_json_string(const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    putchar('"');
    while (*s != '\0') {
        size_t len = utf8_sequence_length(s);
        if (len == 0)
            printf("\\udc%02x", *s++);
        else if (*s == '"' || *s == '\\')
            printf("\\%c", *s++);
        else if (*s < 0x20)
            printf("\\u%04x", *s++);
        else {
            fwrite(s, 1, len, stdout);
            s += len;
        }
    }
    putchar('"');
}

/* Room for a name with every byte shown as \xHH, and the NUL. */
#define SHOWN_NAME_MAX (4 * PSHM_NAME_MAX + 1)

/* Whether the valid UTF-8 sequence at s (len bytes) is a control character:
 * C0, DEL or C1 (U+0080-U+009F, which some terminals obey like ESC [). */
static bool is_control(const unsigned char *s, size_t len)
{
    return (len == 1 && (*s < 0x20 || *s == 0x7f)) ||
           (len == 2 && s[0] == 0xc2 && s[1] <= 0x9f);
}

/* Append the escape for byte c to out at *n: \a \b \t \n \v \f \r, else \xHH. */
static void escape_byte(unsigned char c, char *out, size_t *n)
{
    static const char bytes[] = "\a\b\t\n\v\f\r", letters[] = "abtnvfr";
    const char *known = c != 0 ? memchr(bytes, c, sizeof bytes - 1) : NULL;
    if (known != NULL)
        *n += (size_t)snprintf(out + *n, SHOWN_NAME_MAX - *n, "\\%c", letters[known - bytes]);
    else
        *n += (size_t)snprintf(out + *n, SHOWN_NAME_MAX - *n, "\\x%02x", c);
}

/*
 * Copy a block name (at most PSHM_NAME_MAX bytes: it may come from any
 * user's /dev/shm entry) into out, safe to print on a terminal, like
 * `ls -b` but in hex: control characters (C0, DEL, C1) and bytes that are
 * not UTF-8 become \a \b \t \n \v \f \r or \xHH (always two hex digits), a
 * backslash becomes \\, valid printable UTF-8 stays as it is. Returns the
 * result's width, counting one column per character.
 */
static int shown_name(const char *name, char out[SHOWN_NAME_MAX])
{
    const unsigned char *s = (const unsigned char *)name;
    size_t n = 0;
    int width = 0;
    while (*s != '\0') {
        size_t len = utf8_sequence_length(s);
        if (len == 0 || is_control(s, len)) {
            size_t start = n;
            for (size_t i = 0; i < (len ? len : 1); i++)
                escape_byte(*s++, out, &n);
            width += (int)(n - start);
        } else if (*s == '\\') {
            memcpy(out + n, "\\\\", 2);
            n += 2;
            s++;
            width += 2;
        } else {
            memcpy(out + n, s, len);
            n += len;
            s += len;
            width++;
        }
    }
    out[n] = '\0';
    return width;
}

static void print_info_json(const pshm_block_info *info)
{
    const char *user = user_name(info->uid);
    fputs("{\"name\": ", stdout);
    print_json_string(info->name);
    printf(", \"size\": %" PRIu64 ", \"mode\": \"%04o\", \"uid\": %" PRIu32
           ", \"gid\": %" PRIu32 ", \"owner\": ",
           info->size, (unsigned)info->mode, info->uid, info->gid);
    if (user != NULL)
        print_json_string(user);
    else
        fputs("null", stdout);
    putchar('}');
}

/* ------------------------------------------------------------------------ */
/* Block commands                                                            */
/* ------------------------------------------------------------------------ */

struct create_args {
    const char *name;
    size_t size;
    bool have_size, track, hold;
    unsigned flags;
};

static int parse_create(int argc, char **argv, struct create_args *args)
{
    static const struct option options[] = {{"name", required_argument, NULL, 'n'},
                                            {"size", required_argument, NULL, 's'},
                                            {"track", no_argument, NULL, 't'},
                                            {"hold", no_argument, NULL, 'H'},
                                            {"populate", no_argument, NULL, 'p'},
                                            HELP_OPTION,
                                            {0}};
    int opt, status = EXIT_OK;
    options_begin();
    while (status == EXIT_OK &&
           (opt = getopt_long(argc, argv, SHORT_OPTIONS, options, NULL)) != -1) {
        switch (opt) {
        case 'n': args->name = optarg; break;
        case 's':
            status = parse_size("create", "size", optarg, &args->size);
            args->have_size = true;
            break;
        case 't': args->track = true; break;
        case 'H': args->hold = true; break;
        case 'p': args->flags |= PSHM_POPULATE; break;
        case 'h': return show_help(CREATE_HELP);
        default: return bad_option("create", opt, argv);
        }
    }
    if (status != EXIT_OK)
        return status;
    if (!args->have_size)
        return usage_error("create", "--size is required");
    if (args->track && !args->hold)
        return usage_error("create",
                           "--track needs --hold (an untracked block stays "
                           "until 'pshm rm')");
    return expect_operands("create", argc, 0, 0);
}

static int cmd_create(int argc, char **argv)
{
    struct create_args args = {0};
    int status = parse_create(argc, argv, &args);
    if (status != EXIT_OK)
        return status;
    if (!args.track)
        args.flags |= PSHM_UNTRACKED;
    args.flags |= PSHM_NOMAP; /* pshm only holds the block; it never touches the bytes */
    if (!args.hold && !BLOCKS_OUTLIVE_PROCESSES)
        return failf(
            "create: on Windows a block lives only while a process has it open, "
            "so without --hold it would be gone when pshm exits; use --hold");
    pshm_block *block;
    if (pshm_block_create(&block, args.name, args.size, args.flags) < 0)
        return fail();
    print_line(pshm_block_name(block));
    if (args.hold)
        wait_for_stdin_eof();
    pshm_block_free(block);
    return EXIT_OK;
}

static int cmd_attach(int argc, char **argv)
{
    static const struct option options[] = {{"hold", no_argument, NULL, 'H'},
                                            {"no-track", no_argument, NULL, 'u'},
                                            {"readonly", no_argument, NULL, 'r'},
                                            HELP_OPTION,
                                            {0}};
    unsigned flags = 0;
    bool hold = false;
    int opt;
    options_begin();
    while ((opt = getopt_long(argc, argv, SHORT_OPTIONS, options, NULL)) != -1) {
        switch (opt) {
        case 'H': hold = true; break;
        case 'u': flags |= PSHM_UNTRACKED; break;
        case 'r': flags |= PSHM_READONLY; break;
        case 'h': return show_help(ATTACH_HELP);
        default: return bad_option("attach", opt, argv);
        }
    }
    if (expect_operands("attach", argc, 1, 1) != EXIT_OK)
        return EXIT_USAGE;
    if (!hold)
        return usage_error("attach", "--hold is required");
    pshm_block *block;
    if (pshm_block_attach(&block, argv[optind], flags | PSHM_NOMAP) < 0) /* a holder only */
        return fail();
    print_line(pshm_block_name(block));
    wait_for_stdin_eof();
    pshm_block_free(block);
    return EXIT_OK;
}

/* Parse "[--json]" plus exactly `operands` positional arguments. */
static int parse_json_flag(const char *cmd, const char *help, int argc, char **argv,
                           size_t operands, bool *json)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'}, HELP_OPTION, {0}};
    int opt;
    options_begin();
    while ((opt = getopt_long(argc, argv, SHORT_OPTIONS, options, NULL)) != -1) {
        switch (opt) {
        case 'j': *json = true; break;
        case 'h': return show_help(help);
        default: return bad_option(cmd, opt, argv);
        }
    }
    return expect_operands(cmd, argc, operands, operands);
}

static int cmd_info(int argc, char **argv)
{
    bool json = false;
    int status = parse_json_flag("info", INFO_HELP, argc, argv, 1, &json);
    if (status != EXIT_OK)
        return status;
    pshm_block_info info;
    if (pshm_block_stat(argv[optind], &info) < 0)
        return fail();
    if (json) {
        print_info_json(&info);
        putchar('\n');
        return EXIT_OK;
    }
    const char *user = user_name(info.uid);
    char shown[SHOWN_NAME_MAX];
    shown_name(info.name, shown);
    printf("name:  %s\nsize:  %" PRIu64 "\nmode:  %04o\nowner: %" PRIu32 " (%s)\n", shown,
           info.size, (unsigned)info.mode, info.uid, user ? user : "unknown");
    return EXIT_OK;
}

/* What `ls` collects before it sorts and prints. */
struct block_table {
    pshm_block_info *rows;
    size_t len, cap;
};

static int collect_block(const pshm_block_info *info, void *arg)
{
    struct block_table *table = arg;
    if (table->len == table->cap) {
        size_t cap = table->cap ? table->cap * 2 : 64;
        pshm_block_info *rows = realloc(table->rows, cap * sizeof *rows);
        if (rows == NULL)
            return PSHM_ELIMIT;
        table->rows = rows;
        table->cap = cap;
    }
    table->rows[table->len++] = *info;
    return 0;
}

static int compare_by_name(const void *a, const void *b)
{
    return strcmp(((const pshm_block_info *)a)->name, ((const pshm_block_info *)b)->name);
}

static void print_table_json(const struct block_table *table)
{
    putchar('[');
    for (size_t i = 0; i < table->len; i++) {
        fputs(i ? ",\n " : "", stdout);
        print_info_json(&table->rows[i]);
    }
    puts("]");
}

static void print_table_text(const struct block_table *table)
{
    char shown[SHOWN_NAME_MAX];
    int name_width = 4;
    for (size_t i = 0; i < table->len; i++) {
        int width = shown_name(table->rows[i].name, shown);
        name_width = width > name_width ? width : name_width;
    }
    printf("%-*s %12s MODE OWNER\n", name_width, "NAME", "SIZE");
    for (size_t i = 0; i < table->len; i++) {
        const pshm_block_info *row = &table->rows[i];
        const char *user = user_name(row->uid);
        int width = shown_name(row->name, shown);
        /* Padded by hand: printf pads bytes, and a UTF-8 character is several. */
        printf("%s%*s %12" PRIu64 " %04o ", shown, name_width - width, "", row->size,
               (unsigned)row->mode);
        if (user != NULL)
            printf("%s\n", user);
        else
            printf("%" PRIu32 "\n", row->uid);
    }
}

static int cmd_ls(int argc, char **argv)
{
    bool json = false;
    int status = parse_json_flag("ls", LS_HELP, argc, argv, 0, &json);
    if (status != EXIT_OK)
        return status;
    struct block_table table = {0};
    int rc = pshm_block_foreach(collect_block, &table);
    if (rc == 0) {
        qsort(table.rows, table.len, sizeof *table.rows, compare_by_name);
        if (json)
            print_table_json(&table);
        else
            print_table_text(&table);
    }
    free(table.rows);
    if (rc == PSHM_ELIMIT)
        return failf("ls: out of memory");
    return rc < 0 ? fail() : EXIT_OK;
}

/* A byte range within a block, as read and write take it. */
struct byte_range {
    size_t offset, length;
    bool have_length;
};

/* Parse NAME plus the range options in `options` (--offset, --length). */
static int parse_range(const char *cmd, const char *help, const struct option *options,
                       int argc, char **argv, struct byte_range *range)
{
    int opt, status = EXIT_OK;
    options_begin();
    while (status == EXIT_OK &&
           (opt = getopt_long(argc, argv, SHORT_OPTIONS, options, NULL)) != -1) {
        switch (opt) {
        case 'o': status = parse_size(cmd, "offset", optarg, &range->offset); break;
        case 'l':
            status = parse_size(cmd, "length", optarg, &range->length);
            range->have_length = true;
            break;
        case 'h': return show_help(help);
        default: return bad_option(cmd, opt, argv);
        }
    }
    return status != EXIT_OK ? status : expect_operands(cmd, argc, 1, 1);
}

/*
 * Copy bytes [offset, offset + len) of the block to stdout, through
 * pshm_block_read: writing straight from the mapping would make the kernel
 * allocate every never-written page it reads, and on a full /dev/shm fail
 * with EFAULT ("Bad address").
 */
static int copy_to_stdout(const pshm_block *block, size_t offset, size_t len)
{
    enum { CHUNK = 1 << 16 };
    char *chunk = malloc(CHUNK);
    if (chunk == NULL)
        return failf("read \"%s\": out of memory", pshm_block_name(block));
    int status = EXIT_OK;
    while (status == EXIT_OK && len > 0) {
        size_t n = len < CHUNK ? len : CHUNK;
        if (pshm_block_read(block, offset, chunk, n) < 0)
            status = fail();
        else if (write_all(STDOUT_FILENO, chunk, n) < 0)
            status = failf("read \"%s\": writing to stdout: %s", pshm_block_name(block),
                           strerror(errno));
        offset += n;
        len -= n;
    }
    free(chunk);
    return status;
}

static int cmd_read(int argc, char **argv)
{
    static const struct option options[] = {{"offset", required_argument, NULL, 'o'},
                                            {"length", required_argument, NULL, 'l'},
                                            HELP_OPTION,
                                            {0}};
    struct byte_range range = {0};
    int status = parse_range("read", READ_HELP, options, argc, argv, &range);
    if (status != EXIT_OK)
        return status;
    size_t offset = range.offset, length = range.length;
    pshm_block *block;
    if (pshm_block_attach(&block, argv[optind], PSHM_READONLY | PSHM_UNTRACKED) < 0)
        return fail();
    size_t size = pshm_block_size(block);
    const char *name = pshm_block_name(block);
    if (offset > size)
        status = failf("read \"%s\": offset %zu is past the end of the block (size %zu)",
                       name, offset, size);
    else if (range.have_length && length > size - offset)
        status = failf(
            "read \"%s\": offset %zu + length %zu runs past the end of the "
            "block (size %zu)",
            name, offset, length, size);
    else
        status = copy_to_stdout(block, offset, range.have_length ? length : size - offset);
    pshm_block_free(block);
    return status;
}

/* Copy stdin into the block at offset, all or nothing. */
static int write_stdin_into(pshm_block *block, size_t offset)
{
    size_t size = pshm_block_size(block);
    const char *name = pshm_block_name(block);
    if (offset > size)
        return failf("write \"%s\": offset %zu is past the end of the block (size %zu)", name,
                     offset, size);
    size_t room = size - offset, len;
    char *data;
    int rc = read_stdin(room + 1, &data, &len);
    int status = EXIT_OK;
    if (rc < 0)
        status = failf("write \"%s\": reading stdin: %s", name, strerror(errno));
    else if (len > room)
        status = failf(
            "write \"%s\": the input runs past the end of the block (offset "
            "%zu, size %zu): nothing written",
            name, offset, size);
    else if (pshm_block_reserve(block, offset, len) < 0) /* else SIGBUS on a full /dev/shm */
        status = failf("write: %s; nothing written", pshm_last_error());
    else
        memcpy((char *)pshm_block_buf(block) + offset, data, len);
    free(data);
    return status;
}

static int cmd_write(int argc, char **argv)
{
    static const struct option options[] = {
        {"offset", required_argument, NULL, 'o'}, HELP_OPTION, {0}};
    struct byte_range range = {0};
    int status = parse_range("write", WRITE_HELP, options, argc, argv, &range);
    if (status != EXIT_OK)
        return status;
    pshm_block *block;
    if (pshm_block_attach(&block, argv[optind], PSHM_UNTRACKED) < 0)
        return fail();
    status = write_stdin_into(block, range.offset);
    pshm_block_free(block);
    return status;
}

/* Parse only --help, then check for `min`..`max` positional arguments. */
static int parse_plain(const char *cmd, const char *help, int argc, char **argv, size_t min,
                       size_t max)
{
    static const struct option options[] = {HELP_OPTION, {0}};
    int opt;
    options_begin();
    while ((opt = getopt_long(argc, argv, SHORT_OPTIONS, options, NULL)) != -1) {
        if (opt != 'h')
            return bad_option(cmd, opt, argv);
        return show_help(help);
    }
    return expect_operands(cmd, argc, min, max);
}

static int cmd_rm(int argc, char **argv)
{
    int status = parse_plain("rm", RM_HELP, argc, argv, 1, SIZE_MAX);
    if (status != EXIT_OK)
        return status;
    for (int i = optind; i < argc; i++)
        if (pshm_unlink(argv[i]) < 0)
            status = fail();
    return status;
}

/* ------------------------------------------------------------------------ */
/* List commands                                                             */
/* ------------------------------------------------------------------------ */

static int cmd_list_new(int argc, char **argv)
{
    static const struct option options[] = {
        {"name", required_argument, NULL, 'n'}, HELP_OPTION, {0}};
    const char *name = NULL;
    int opt;
    options_begin();
    while ((opt = getopt_long(argc, argv, SHORT_OPTIONS, options, NULL)) != -1) {
        switch (opt) {
        case 'n': name = optarg; break;
        case 'h': return show_help(LIST_NEW_HELP);
        default: return bad_option("list new", opt, argv);
        }
    }
    if (!BLOCKS_OUTLIVE_PROCESSES)
        return failf(
            "list new: on Windows a list lives only while a process has it open, "
            "and pshm cannot hold one; make it from a program that keeps it");
    size_t n = (size_t)(argc - optind);
    pshm_value *values;
    int status = parse_values("list new", argv + optind, n, &values);
    if (status != EXIT_OK)
        return status;
    pshm_list *list;
    if (pshm_list_create(&list, name, values, n, PSHM_UNTRACKED) < 0)
        status = fail();
    else {
        print_line(pshm_block_name(pshm_list_block(list)));
        pshm_list_free(list);
    }
    free_values(values, n);
    return status;
}

/* Something a list shows as text: the whole list, its format, one item. */
typedef int (*list_text_fn)(const pshm_list *list, int64_t index, char **out);

static int list_repr_text(const pshm_list *list, int64_t index, char **out)
{
    (void)index;
    return pshm_list_repr(list, out);
}

static int list_format_text(const pshm_list *list, int64_t index, char **out)
{
    (void)index;
    return pshm_list_format(list, out);
}

static int item_repr_text(const pshm_list *list, int64_t index, char **out)
{
    pshm_value value;
    int rc = pshm_list_get(list, index, &value);
    return rc < 0 ? rc : pshm_value_repr(&value, out);
}

/* Attach the list `name` read-only and print what `render` makes of it. */
static int print_list_text(const char *name, int64_t index, list_text_fn render)
{
    pshm_list *list;
    if (pshm_list_attach(&list, name, PSHM_READONLY | PSHM_UNTRACKED) < 0)
        return fail();
    char *text = NULL;
    int status = render(list, index, &text) < 0 ? fail() : EXIT_OK;
    if (status == EXIT_OK)
        print_line(text);
    free(text);
    pshm_list_free(list);
    return status;
}

static int cmd_list_show(int argc, char **argv)
{
    int status = parse_plain("list show", LIST_SHOW_HELP, argc, argv, 1, 1);
    return status != EXIT_OK ? status : print_list_text(argv[optind], 0, list_repr_text);
}

static int cmd_list_format(int argc, char **argv)
{
    int status = parse_plain("list format", LIST_FORMAT_HELP, argc, argv, 1, 1);
    return status != EXIT_OK ? status : print_list_text(argv[optind], 0, list_format_text);
}

static int cmd_list_get(int argc, char **argv)
{
    int status = parse_plain("list get", LIST_GET_HELP, argc, argv, 2, 2);
    int64_t index;
    if (status == EXIT_OK)
        status = parse_index("list get", argv[optind + 1], &index);
    return status != EXIT_OK ? status : print_list_text(argv[optind], index, item_repr_text);
}

static int cmd_list_set(int argc, char **argv)
{
    int status = parse_plain("list set", LIST_SET_HELP, argc, argv, 3, 3);
    int64_t index = 0;
    pshm_value *value = NULL;
    if (status == EXIT_OK)
        status = parse_index("list set", argv[optind + 1], &index);
    if (status == EXIT_OK)
        status = parse_values("list set", argv + optind + 2, 1, &value);
    if (status != EXIT_OK)
        return status;
    pshm_list *list;
    if (pshm_list_attach(&list, argv[optind], PSHM_UNTRACKED) < 0)
        status = fail();
    else {
        if (pshm_list_set(list, index, *value) < 0)
            status = fail();
        pshm_list_free(list);
    }
    free_values(value, 1);
    return status;
}

/* ------------------------------------------------------------------------ */
/* Manager commands                                                          */
/* ------------------------------------------------------------------------ */

/* Where the server is and how to prove we may talk to it. */
struct manager_opts {
    const char *address;
    const char *authkey_file;
    unsigned char key[PSHM_AUTHKEY_MAX];
    size_t keylen;
};

static const struct option manager_options[] = {
    {"address", required_argument, NULL, 'a'},
    {"authkey-file", required_argument, NULL, 'k'},
    HELP_OPTION,
    {0}};

/*
 * Parse --address/--authkey-file into opts. In `stop_at_operand` mode (the
 * options before the subcommand) stop at the first operand.
 */
static int parse_manager_options(const char *cmd, const char *help, int argc, char **argv,
                                 bool stop_at_operand, struct manager_opts *opts)
{
    int opt;
    options_begin();
    while ((opt = getopt_long(argc, argv, stop_at_operand ? "+" SHORT_OPTIONS : SHORT_OPTIONS,
                              manager_options, NULL)) != -1) {
        switch (opt) {
        case 'a': opts->address = optarg; break;
        case 'k': opts->authkey_file = optarg; break;
        case 'h': return show_help(help);
        default: return bad_option(cmd, opt, argv);
        }
    }
    return EXIT_OK;
}

/* Read the key's raw bytes from opts->authkey_file. */
static int load_authkey(struct manager_opts *opts)
{
    FILE *f = fopen(opts->authkey_file, "rb");
    if (f == NULL)
        return failf("authkey file \"%s\": %s", opts->authkey_file, strerror(errno));
    opts->keylen = fread(opts->key, 1, sizeof opts->key, f);
    bool longer = fgetc(f) != EOF, broken = ferror(f);
    fclose(f);
    if (broken)
        return failf("authkey file \"%s\": read error", opts->authkey_file);
    if (opts->keylen == 0 || longer)
        return failf("authkey file \"%s\": a key must hold 1 to %d bytes", opts->authkey_file,
                     PSHM_AUTHKEY_MAX);
    return EXIT_OK;
}

/* Make a fresh random key and save it to a new file in $TMPDIR or /tmp. */
static int generate_authkey(struct manager_opts *opts, char *path, size_t cap)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, cap, "%s/pshm-authkey-XXXXXX", dir && *dir ? dir : temp_dir());
    opts->keylen = PSHM_AUTHKEY_LEN;
    if (!random_bytes(opts->key, opts->keylen))
        return failf("serve: no random bytes for a key: %s", strerror(errno));
    int fd = mkstemp(path);
    if (fd < 0)
        return failf("serve: creating a key file \"%s\": %s", path, strerror(errno));
    int rc = write_all(fd, (const char *)opts->key, opts->keylen);
    int saved = errno;
    close(fd);
    if (rc < 0) {
        unlink(path);
        return failf("serve: writing the key file \"%s\": %s", path, strerror(saved));
    }
    fprintf(stderr, "pshm: no authkey given; wrote a new random key to %s\n", path);
    return EXIT_OK;
}

static void print_ready_address(const char *address, void *arg)
{
    (void)arg;
    print_line(address);
}

static int cmd_manager_serve(struct manager_opts *opts, int argc, char **argv)
{
    int status = parse_manager_options("manager serve", SERVE_HELP, argc, argv, false, opts);
    if (status == EXIT_OK)
        status = expect_operands("manager serve", argc, 0, 0);
    if (status != EXIT_OK)
        return status;
    char generated[4096] = "";
    if (opts->authkey_file != NULL)
        status = load_authkey(opts);
    else
        status = generate_authkey(opts, generated, sizeof generated);
    if (status != EXIT_OK)
        return status;
    if (pshm_manager_serve(opts->address, opts->key, opts->keylen, print_ready_address,
                           NULL) < 0)
        status = fail();
    if (generated[0] != '\0')
        unlink(generated);
    return status;
}

/* Connect to the server opts describe; both the address and a key are needed. */
static int connect_manager(const char *cmd, struct manager_opts *opts, pshm_manager **out)
{
    if (opts->address == NULL)
        return usage_error(cmd,
                           "no server address: give --address or set "
                           "PSHM_MANAGER_ADDRESS");
    if (opts->authkey_file == NULL)
        return usage_error(cmd, "no key: give --authkey-file or set PSHM_AUTHKEY_FILE");
    int status = load_authkey(opts);
    if (status != EXIT_OK)
        return status;
    if (pshm_manager_connect(out, opts->address, opts->key, opts->keylen) < 0)
        return fail();
    return EXIT_OK;
}

/* What a client subcommand asks of a connected server. */
struct manager_request {
    size_t size;        /* block */
    pshm_value *values; /* list */
    size_t n_values;
    const char *name; /* release */
};

typedef int (*manager_action)(pshm_manager *m, const struct manager_request *req);

/* Connect, run `action`, disconnect. */
static int with_manager(const char *cmd, struct manager_opts *opts,
                        const struct manager_request *req, manager_action action)
{
    pshm_manager *m;
    int status = connect_manager(cmd, opts, &m);
    if (status != EXIT_OK)
        return status;
    status = action(m, req);
    pshm_manager_disconnect(m);
    return status;
}

static int request_block(pshm_manager *m, const struct manager_request *req)
{
    pshm_block *block;
    if (pshm_manager_block(m, req->size, &block) < 0)
        return fail();
    print_line(pshm_block_name(block));
    pshm_block_free(block);
    return EXIT_OK;
}

static int request_list(pshm_manager *m, const struct manager_request *req)
{
    pshm_list *list;
    if (pshm_manager_list(m, req->values, req->n_values, &list) < 0)
        return fail();
    print_line(pshm_block_name(pshm_list_block(list)));
    pshm_list_free(list);
    return EXIT_OK;
}

static int request_names(pshm_manager *m, const struct manager_request *req)
{
    (void)req;
    char **names;
    size_t count;
    if (pshm_manager_names(m, &names, &count) < 0)
        return fail();
    for (size_t i = 0; i < count; i++)
        printf("%s\n", names[i]);
    pshm_names_free(names, count);
    return EXIT_OK;
}

static int request_release(pshm_manager *m, const struct manager_request *req)
{
    return pshm_manager_release(m, req->name) < 0 ? fail() : EXIT_OK;
}

static int cmd_manager_block(struct manager_opts *opts, int argc, char **argv)
{
    static const struct option options[] = {
        {"size", required_argument, NULL, 's'}, HELP_OPTION, {0}};
    struct manager_request req = {0};
    bool have_size = false;
    int opt, status = EXIT_OK;
    options_begin();
    while (status == EXIT_OK &&
           (opt = getopt_long(argc, argv, SHORT_OPTIONS, options, NULL)) != -1) {
        switch (opt) {
        case 's':
            status = parse_size("manager block", "size", optarg, &req.size);
            have_size = true;
            break;
        case 'h': return show_help(MANAGER_BLOCK_HELP);
        default: return bad_option("manager block", opt, argv);
        }
    }
    if (status == EXIT_OK && !have_size)
        status = usage_error("manager block", "--size is required");
    if (status == EXIT_OK)
        status = expect_operands("manager block", argc, 0, 0);
    if (status != EXIT_OK)
        return status;
    return with_manager("manager block", opts, &req, request_block);
}

static int cmd_manager_list(struct manager_opts *opts, int argc, char **argv)
{
    int status = parse_plain("manager list", MANAGER_LIST_HELP, argc, argv, 0, SIZE_MAX);
    struct manager_request req = {0};
    req.n_values = (size_t)(argc - optind);
    if (status == EXIT_OK)
        status = parse_values("manager list", argv + optind, req.n_values, &req.values);
    if (status != EXIT_OK)
        return status;
    status = with_manager("manager list", opts, &req, request_list);
    free_values(req.values, req.n_values);
    return status;
}

static int cmd_manager_ls(struct manager_opts *opts, int argc, char **argv)
{
    int status = parse_plain("manager ls", MANAGER_LS_HELP, argc, argv, 0, 0);
    struct manager_request req = {0};
    return status != EXIT_OK ? status : with_manager("manager ls", opts, &req, request_names);
}

static int cmd_manager_release(struct manager_opts *opts, int argc, char **argv)
{
    int status = parse_plain("manager release", MANAGER_RELEASE_HELP, argc, argv, 1, 1);
    struct manager_request req = {0};
    if (status != EXIT_OK)
        return status;
    req.name = argv[optind];
    return with_manager("manager release", opts, &req, request_release);
}

/* Shutdown frees the handle itself, so it does not go through with_manager. */
static int cmd_manager_shutdown(struct manager_opts *opts, int argc, char **argv)
{
    int status = parse_plain("manager shutdown", MANAGER_SHUTDOWN_HELP, argc, argv, 0, 0);
    pshm_manager *m;
    if (status == EXIT_OK)
        status = connect_manager("manager shutdown", opts, &m);
    if (status != EXIT_OK)
        return status;
    return pshm_manager_shutdown(m) < 0 ? fail() : EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* lock                                                                      */
/* ------------------------------------------------------------------------ */

/* "--timeout SECONDS" as milliseconds: a finite number >= 0. */
static int parse_timeout(const char *text, int64_t *ms)
{
    char *end;
    errno = 0;
    double seconds = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(seconds) || seconds < 0 ||
        seconds > 1e9)
        return usage_error("lock", "invalid timeout '%s' (seconds, 0 or more)", text);
    *ms = (int64_t)ceil(seconds * 1000);
    return EXIT_OK;
}

/* Run argv to its end; its exit status, 128 + signal, or 126/127 as a
 * shell gives when the command cannot be run. */
#ifdef _WIN32
static int run_and_wait(char **argv)
{
    intptr_t status = _spawnvp(_P_WAIT, argv[0], (const char *const *)argv);
    if (status < 0) {
        int e = errno;
        fprintf(stderr, "pshm: lock: %s: %s\n", argv[0], strerror(e));
        return e == ENOENT ? 127 : 126;
    }
    return (int)status;
}
#else
static int run_and_wait(char **argv)
{
    pid_t pid = fork();
    if (pid < 0)
        return failf("lock: fork: %s", strerror(errno));
    if (pid == 0) {
        execvp(argv[0], argv);
        int e = errno;
        fprintf(stderr, "pshm: lock: %s: %s\n", argv[0], strerror(e));
        _exit(e == ENOENT ? 127 : 126);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return failf("lock: waitpid: %s", strerror(errno));
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
#endif

static int cmd_lock(int argc, char **argv)
{
    static const struct option options[] = {{"shared", no_argument, NULL, 's'},
                                            {"timeout", required_argument, NULL, 't'},
                                            HELP_OPTION,
                                            {0}};
    bool shared = false;
    int64_t timeout_ms = PSHM_FOREVER;
    int opt;
    options_begin();
    /* Options may come before or after NAME; '--' ends them, so the
     * command's own options are left alone. */
    while ((opt = getopt_long(argc, argv, SHORT_OPTIONS, options, NULL)) != -1) {
        switch (opt) {
        case 's': shared = true; break;
        case 't':
            if (parse_timeout(optarg, &timeout_ms) != EXIT_OK)
                return EXIT_USAGE;
            break;
        case 'h': return show_help(LOCK_HELP);
        default: return bad_option("lock", opt, argv);
        }
    }
    if (argc - optind < 2)
        return usage_error("lock", "missing %s", argc == optind ? "NAME" : "COMMAND");
    const char *name = argv[optind];
    pshm_block *lock;
    if (pshm_lock_open(&lock, name, 0) < 0)
        return fail();
    int rc = shared ? pshm_rwlock_rdlock(lock, 0, timeout_ms)
                    : pshm_rwlock_wrlock(lock, 0, timeout_ms);
    if (rc == PSHM_OWNERDEAD) {
        /* A command has no data of ours to repair: say so, go on. */
        fprintf(stderr, "pshm: lock \"%s\": the previous holder died holding it\n", name);
        rc = pshm_rwlock_consistent(lock, 0);
    }
    if (rc < 0) {
        int status = fail();
        pshm_block_free(lock);
        return status;
    }
    int status = run_and_wait(argv + optind + 1);
    if ((shared ? pshm_rwlock_rdunlock(lock, 0) : pshm_rwlock_wrunlock(lock, 0)) < 0)
        status = fail();
    pshm_block_free(lock);
    return status;
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                  */
/* ------------------------------------------------------------------------ */

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
};

struct manager_command {
    const char *name;
    int (*run)(struct manager_opts *opts, int argc, char **argv);
};

/*
 * Run the command argv[0] names in `group` (NULL: pshm's own commands), or
 * print the group's help for --help.
 */
static int run_command(const char *group, const char *help, const struct command *table,
                       size_t n, int argc, char **argv)
{
    if (argc < 1)
        return usage_error(group, "missing command");
    if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)
        return show_help(help);
    for (size_t i = 0; i < n; i++)
        if (strcmp(argv[0], table[i].name) == 0)
            return table[i].run(argc, argv);
    return usage_error(group, "unknown command '%s'", argv[0]);
}

static int cmd_list(int argc, char **argv)
{
    static const struct command subcommands[] = {{"new", cmd_list_new},
                                                 {"show", cmd_list_show},
                                                 {"get", cmd_list_get},
                                                 {"set", cmd_list_set},
                                                 {"format", cmd_list_format}};
    return run_command("list", LIST_HELP, subcommands, ARRAY_LEN(subcommands), argc - 1,
                       argv + 1);
}

static int cmd_manager(int argc, char **argv)
{
    static const struct manager_command subcommands[] = {
        {"serve", cmd_manager_serve},     {"block", cmd_manager_block},
        {"list", cmd_manager_list},       {"ls", cmd_manager_ls},
        {"release", cmd_manager_release}, {"shutdown", cmd_manager_shutdown}};
    struct manager_opts opts = {
        getenv("PSHM_MANAGER_ADDRESS"), getenv("PSHM_AUTHKEY_FILE"), {0}, 0};
    int status = parse_manager_options("manager", MANAGER_HELP, argc, argv, true, &opts);
    if (status != EXIT_OK)
        return status;
    if (optind >= argc)
        return usage_error("manager", "missing command");
    for (size_t i = 0; i < ARRAY_LEN(subcommands); i++)
        if (strcmp(argv[optind], subcommands[i].name) == 0)
            return subcommands[i].run(&opts, argc - optind, argv + optind);
    return usage_error("manager", "unknown command '%s'", argv[optind]);
}

int main(int argc, char **argv)
{
    static const struct command commands[] = {
        {"create", cmd_create}, {"attach", cmd_attach}, {"info", cmd_info},
        {"ls", cmd_ls},         {"read", cmd_read},     {"write", cmd_write},
        {"rm", cmd_rm},         {"list", cmd_list},     {"manager", cmd_manager},
        {"lock", cmd_lock}};
#ifdef _WIN32
    if (argc == 2 && strcmp(argv[1], "--pshm-manager-server") == 0)
        return pshm_win_manager_server_main();
#endif
    binary_stdio();
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("pshm %d.%d.%d\n", PSHM_VERSION_MAJOR, PSHM_VERSION_MINOR, PSHM_VERSION_PATCH);
        return EXIT_OK;
    }
    return exit_status(
        run_command(NULL, MAIN_HELP, commands, ARRAY_LEN(commands), argc - 1, argv + 1));
}
