/*
 * fuzz_msgpack.c - msgpack from outside (an RPC client's event data, a stored
 * event) through every reader the codec has: the validators (msgpack_check.c:
 * well-formed, and ml_msgpack_check_value, what the log stores), the JSON renderer
 * (msgpack_json.c), the Lua decoder and encoder (lua_codec.c), and the view
 * through which a script reads an event (script/view.c).
 *
 * The readers must agree (docs/codec.md): every well-formed object, and only
 * those, renders to JSON and decodes to Lua, and a script's view reads it all,
 * so that no stored event, even one an older version stored, stops a reader;
 * what the log stores is well-formed; the JSON of what the log stores reads
 * back, and then goes round again unchanged; and a decoded value encodes to
 * well-formed msgpack, unless a key is a boolean or a table (keys must be
 * strings or numbers; an ext key decodes to a table), which a stored value
 * never has.
 */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <moonlog/codec.h>
#include <moonlog/script.h>

#include "fuzz.h"

/* Does a map in the value (which passed the validator) have a key that decodes to a
 * boolean or a table: a boolean, an array, a map or an ext value? */
static int odd_key(struct ml_msgpack_reader *r, int is_key)
{
	struct ml_msgpack_obj o;
	int odd = 0;
	if (ml_msgpack_read(r, &o) != 0)
		return 0;
	if (is_key)
		odd = o.kind == ML_MP_BOOL || o.kind == ML_MP_ARRAY || o.kind == ML_MP_MAP ||
		      o.kind == ML_MP_EXT;
	for (uint32_t i = 0; o.kind == ML_MP_ARRAY && i < o.n; i++)
		odd |= odd_key(r, 0);
	for (uint32_t i = 0; o.kind == ML_MP_MAP && i < o.n; i++)
		odd |= odd_key(r, 1), odd |= odd_key(r, 0);
	return odd;
}

/* A projection that reads every part of an event's data and meta through the view (once:
 * a walk that went down twice per level would be exponential in the depth). */
static const char walker_src[] =
    "local ml = require 'moonlog'\n"
    "local function walk(v)\n"
    "  if type(v) ~= 'userdata' then return 1 end\n"
    "  local n, s = #v, tostring(v)\n"
    "  for i = 1, math.min(n, 8) do local x = v[i] end\n"
    "  for k, x in pairs(v) do\n"
    "    n = n + walk(k) + walk(x)\n"
    "    local again = v[k]\n"
    "  end\n"
    "  return n\n"
    "end\n"
    "return ml.projection {\n"
    "  name = 'walker', from = '*',\n"
    "  init = function() return { n = 0 } end,\n"
    "  on = { T = function(s, e) s.n = walk(e.data) + walk(e.meta) end },\n"
    "}\n";

static lua_State *L;
static struct ml_script *walker;
static uint64_t position;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	struct ml_script_options o;
	ml_script_options_init(&o);
	o.time_limit_ms = 20000; /* a liveness bound only: a busy machine must not fail a walk */
	L = luaL_newstate();
	walker = ml_script_load_buffer("walker.lua", walker_src, sizeof(walker_src) - 1, &o);
	if (walker == NULL) {
		fprintf(stderr, "fuzz_msgpack: the walker script does not load: %s\n",
			ml_diag_last());
		exit(1);
	}
	return 0;
}

/* The view: the bytes as an event's data (and its meta when they are a map). */
static void through_view(const uint8_t *data, size_t size)
{
	struct ml_event e = {.position = ++position,
			     .version = 1,
			     .stream = "s-1",
			     .stream_len = 3,
			     .type = "T",
			     .type_len = 1,
			     .id = "i",
			     .id_len = 1,
			     .data = data,
			     .data_len = (uint32_t)size};
	if (ml_msgpack_is_map(data, size))
		e.meta = data, e.meta_len = (uint32_t)size;
	FUZZ_ASSERT(ml_script_feed(walker, &e) == 0, "a script cannot read valid data");
}

/* The plain decoder, and the encoder on what it made. */
static void through_lua(const uint8_t *data, size_t size, int valid, int stored)
{
	struct ml_buf out = {0};
	lua_settop(L, 0);
	int pushed = ml_lua_push_msgpack(L, data, size) == 0;
	FUZZ_ASSERT(pushed == valid, "the Lua decoder %s",
		    valid ? "refused well-formed msgpack" : "took what the validator refuses");
	FUZZ_ASSERT(lua_gettop(L) == pushed, "the Lua decoder left %d values", lua_gettop(L));
	if (!pushed)
		return;
	ml_buf_add(&out, "#", 1);
	int encoded = ml_lua_to_msgpack(L, 1, &out) == 0;
	if (!encoded) {
		struct ml_msgpack_reader r;
		ml_msgpack_reader_init(&r, data, size);
		FUZZ_ASSERT(!stored && odd_key(&r, 0), "a decoded value does not encode");
		FUZZ_ASSERT(out.len == 1, "a refused encoding changed the buffer");
	} else {
		FUZZ_ASSERT(ml_msgpack_check(out.data + 1, out.len - 1) == 0,
			    "the encoder wrote msgpack the validator refuses");
		FUZZ_ASSERT(ml_lua_push_msgpack(L, out.data + 1, out.len - 1) == 0,
			    "the encoder's msgpack does not decode");
	}
	lua_settop(L, 0);
	ml_buf_free(&out);
}

/*
 * The JSON renderer. The JSON of a stored value reads back, and then goes round again
 * unchanged (the text may differ once: a float 32 is written as the shortest text for a
 * float 32, which reads back as a float 64 and is written as one the next time). Other
 * values may not read back ({1: 1, "1": 2} shows one key twice), but when they do, the
 * same holds.
 */
static void through_json(const uint8_t *data, size_t size, int valid, int stored)
{
	struct ml_buf json = {0}, mp = {0}, json2 = {0}, mp2 = {0};
	ml_buf_add(&json, "#", 1);
	int rendered = ml_msgpack_to_json(data, size, &json) == 0;
	FUZZ_ASSERT(rendered == valid, "the JSON renderer %s",
		    valid ? "refused well-formed msgpack" : "took what the validator refuses");
	FUZZ_ASSERT(rendered || json.len == 1, "a refused rendering changed the buffer");
	int back = rendered && ml_json_to_msgpack(json.data + 1, json.len - 1, &mp) == 0;
	FUZZ_ASSERT(back || !stored, "the JSON of a stored value does not read back: %.*s",
		    (int)json.len - 1, json.data + 1);
	if (back) {
		FUZZ_ASSERT(ml_msgpack_to_json(mp.data, mp.len, &json2) == 0 &&
				ml_json_to_msgpack(json2.data, json2.len, &mp2) == 0 &&
				mp.len == mp2.len && memcmp(mp.data, mp2.data, mp.len) == 0,
			    "JSON read back changes on the next round: %.*s", (int)json.len - 1,
			    json.data + 1);
	}
	ml_buf_free(&json);
	ml_buf_free(&mp);
	ml_buf_free(&json2);
	ml_buf_free(&mp2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ml_diag_clear();
	int valid = ml_msgpack_check(data, size) == 0;
	FUZZ_ASSERT(valid || (ml_diag_code() == ML_ERR_USAGE && ml_diag_last()[0]),
		    "a refusal without a reason");
	ml_diag_clear();
	int stored = ml_msgpack_check_value(data, size, "data") == 0;
	FUZZ_ASSERT(stored || (ml_diag_code() == ML_ERR_USAGE && ml_diag_last()[0]),
		    "a refusal without a reason");
	FUZZ_ASSERT(!stored || valid, "the log would store what the validator refuses");
	through_json(data, size, valid, stored);
	through_lua(data, size, valid, stored);
	if (valid && size > 0)
		through_view(data, size);
	return 0;
}
