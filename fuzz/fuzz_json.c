/* libFuzzer harness: JSON reader (lp_json_parse: cJSON plus source/key-path labels) and the
 * typed getters on every key of every object in the tree. */
#include "fuzz_common.h"

#include "leanprop/json.h"

LPFUZZ_INIT(64u << 20)

static void visit(const cJSON *node, int depth)
{
    if (depth > 64) return;
    (void)lp_json_source(node);
    (void)lp_json_keypath(node);
    if (cJSON_IsObject(node)) {
        const cJSON *c;
        cJSON_ArrayForEach(c, node) {
            const char *k = c->string;
            if (!k) lpfuzz_die("object member without a key");
            int i; int64_t i64; double d; float f; int b; const char *s; const cJSON *o;
            int64_t list[4]; size_t nl;
            lp_error_clear(); lpfuzz_status(lp_json_get_int(node, k, 0, &i), 0, 0);
            lp_error_clear(); lpfuzz_status(lp_json_get_i64(node, k, 0, &i64), 0, 0);
            lp_error_clear(); lpfuzz_status(lp_json_get_double(node, k, 0, &d), 0, 0);
            lp_error_clear(); lpfuzz_status(lp_json_get_float(node, k, 0, &f), 0, 0);
            lp_error_clear(); lpfuzz_status(lp_json_get_bool(node, k, 0, &b), 0, 0);
            lp_error_clear(); lpfuzz_status(lp_json_get_string(node, k, NULL, &s), 0, 0);
            lp_error_clear(); lpfuzz_status(lp_json_get_object(node, k, &o), 0, 0);
            lp_error_clear(); lpfuzz_status(lp_json_get_array(node, k, &o), 0, 0);
            lp_error_clear(); lpfuzz_status(lp_json_require_i64(node, k, &i64), 0, 0);
            lp_error_clear(); lpfuzz_status(lp_json_get_int_list(node, k, list, 4, &nl), 0, 0);
            if (nl > 4) lpfuzz_die("int list count past its capacity");
            visit(c, depth + 1);
        }
    } else if (cJSON_IsArray(node)) {
        const cJSON *c;
        cJSON_ArrayForEach(c, node) visit(c, depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lpfuzz_begin();
    cJSON *root = NULL;
    lp_status st = lp_json_parse((const char *)data, size, "fuzz.json", &root);
    lpfuzz_status(st, LPFUZZ_LENIENT, size);
    if (st == LP_OK) {
        visit(root, 0);
        lp_json_free(root);
    }
    lpfuzz_end();
    return 0;
}
