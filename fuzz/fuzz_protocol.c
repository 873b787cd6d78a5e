/*
 * fuzz_protocol.c — libFuzzer target for the manager's message decoders.
 *
 * The first input byte picks the decoder (what a peer's bytes reach on the
 * other side: a greeting, an authentication, a welcome, a request, a
 * response, or an address string); the rest is one frame's payload. Every
 * message that decodes is encoded again and must decode to the same thing,
 * so encoder and decoder cannot drift apart.
 */
#include "protocol.h"

#include <stdlib.h>
#include <string.h>

enum {
    PICK_HELLO,
    PICK_AUTH,
    PICK_WELCOME,
    PICK_REQUEST,
    PICK_RESPONSE,
    PICK_ADDRESS,
    PICK_COUNT
};

static proto_buf wire;

/* The payload of the single frame in `wire`. */
static const uint8_t *wire_payload(size_t *len)
{
    const uint8_t *bytes = (const uint8_t *)wire.data;
    if (wire.failed || wire.len < PROTO_HEADER_LEN ||
        proto_frame_length(bytes) != wire.len - PROTO_HEADER_LEN)
        abort();
    *len = wire.len - PROTO_HEADER_LEN;
    return bytes + PROTO_HEADER_LEN;
}

static bool same_value(const pshm_value *a, const pshm_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case PSHM_INT: return a->u.i == b->u.i;
    case PSHM_FLOAT: return memcmp(&a->u.f, &b->u.f, sizeof a->u.f) == 0;
    case PSHM_BOOL: return a->u.b == b->u.b;
    case PSHM_STR:
    case PSHM_BYTES:
        return a->u.s.len == b->u.s.len && memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0;
    default: return true;
    }
}

static void reencode_request(const proto_request *r)
{
    char name[PSHM_NAME_MAX + 1];
    wire.len = 0;
    switch (r->kind) {
    case REQ_CREATE_BLOCK: proto_put_create_block(&wire, r->size); break;
    case REQ_CREATE_LIST: proto_put_create_list(&wire, r->values, r->count); break;
    case REQ_RELEASE:
        memcpy(name, r->name.ptr, r->name.len);
        name[r->name.len] = '\0';
        proto_put_release(&wire, name);
        break;
    default: proto_put_simple(&wire, r->kind); break;
    }
    size_t len;
    const uint8_t *p = wire_payload(&len);
    proto_request again;
    if (proto_get_request(p, len, &again, "fuzz") != 0 || again.kind != r->kind ||
        again.size != r->size || again.count != r->count || again.name.len != r->name.len)
        abort();
    for (size_t i = 0; i < r->count; i++)
        if (!same_value(&r->values[i], &again.values[i]))
            abort();
    proto_request_clear(&again);
}

static void fuzz_request(const uint8_t *p, size_t len)
{
    proto_request r;
    if (proto_get_request(p, len, &r, "fuzz") == 0) {
        reencode_request(&r);
        proto_request_clear(&r);
    }
}

static const proto_response *names_source;
static size_t names_next;

static const char *next_name(void *arg)
{
    static char name[PSHM_NAME_MAX + 1];
    (void)arg;
    proto_text t = names_source->names[names_next++];
    memcpy(name, t.ptr, t.len);
    name[t.len] = '\0';
    return name;
}

static void fuzz_response(const uint8_t *p, size_t len)
{
    proto_response r;
    if (proto_get_response(p, len, &r, "fuzz") != 0)
        return;
    if (r.kind == RESP_OK_NAMES) {
        wire.len = 0;
        names_source = &r;
        names_next = 0;
        proto_put_ok_names(&wire, r.count, next_name, NULL);
        size_t n;
        const uint8_t *q = wire_payload(&n);
        /* Names are copied verbatim, so the re-encoding is the input. */
        if (n != len || memcmp(q, p, n) != 0)
            abort();
    }
    proto_response_clear(&r);
}

static void fuzz_address(const uint8_t *p, size_t len)
{
    char *text = malloc(len + 1);
    memcpy(text, p, len);
    text[len] = '\0';
    proto_addr a;
    if (proto_addr_parse("fuzz", text, &a) == 0) {
        char out[PROTO_ADDR_MAX];
        proto_addr_format(&a, out);
        proto_addr b;
        if (proto_addr_parse("fuzz", out, &b) != 0 || memcmp(&a, &b, sizeof a) != 0)
            abort();
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *p = data + 1;
    size_t len = size - 1;
    proto_hello h;
    proto_auth a;
    proto_welcome w;
    switch (data[0] % PICK_COUNT) {
    case PICK_HELLO: proto_get_hello(p, len, &h, "fuzz"); break;
    case PICK_AUTH: proto_get_auth(p, len, &a, "fuzz"); break;
    case PICK_WELCOME: proto_get_welcome(p, len, &w, "fuzz"); break;
    case PICK_REQUEST: fuzz_request(p, len); break;
    case PICK_RESPONSE: fuzz_response(p, len); break;
    case PICK_ADDRESS: fuzz_address(p, len); break;
    }
    return 0;
}
