-- seeds.lua - writes the hand-made seed inputs of the fuzz targets (corpus/NAME/seed-*).
--
--   lua5.4 runtime/test/fuzz/seeds.lua [CORPUS_DIR]     (default: corpus/ beside this file)
--
-- The seeds are the traffic of the specs (spec/e2e) and the cases docs/codec.md and
-- docs/protocol.md name, written out by hand here so that the binary ones can be read and
-- changed. The fuzzers grow each corpus from them; `make fuzz` merges what they find into
-- the same folders under hash names. Running this again rewrites only the seed-* files.

local dir = arg[1] or (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/corpus"

local function write(target, name, bytes)
  os.execute("mkdir -p '" .. dir .. "/" .. target .. "'")
  local f = assert(io.open(dir .. "/" .. target .. "/seed-" .. name, "wb"))
  f:write(bytes)
  f:close()
end

-- ---- msgpack, with maps as ordered lists of pairs -------------------------------------

local mp = {}
local MAP, ARR, RAW = {}, {}, {}
function mp.map(pairs_) return { [MAP] = pairs_ } end   -- { {k, v}, ... }
function mp.arr(items, n) return { [ARR] = items, n = n or #items } end
function mp.raw(bytes) return { [RAW] = bytes } end
mp.null = mp.raw("\xc0")

local function head(small, fixmax, c16, c32, n)
  if n <= fixmax then return string.char(small | n) end
  if n <= 0xffff then return string.pack(">BI2", c16, n) end
  return string.pack(">BI4", c32, n)
end

function mp.enc(v)
  local t = type(v)
  if v == nil then return "\xc0" end
  if t == "boolean" then return v and "\xc3" or "\xc2" end
  if t == "string" then
    local n = #v
    if n <= 31 then return string.char(0xa0 | n) .. v end
    if n <= 0xff then return string.pack(">BB", 0xd9, n) .. v end
    return head(0, -1, 0xda, 0xdb, n) .. v
  end
  if math.type(v) == "integer" then
    if v >= 0 and v <= 0x7f then return string.char(v) end
    if v < 0 and v >= -32 then return string.pack("b", v) end
    if v > 0 then
      if v <= 0xff then return string.pack(">BB", 0xcc, v) end
      if v <= 0xffff then return string.pack(">BI2", 0xcd, v) end
      if v <= 0xffffffff then return string.pack(">BI4", 0xce, v) end
      return string.pack(">Bi8", 0xcf, v)
    end
    return string.pack(">Bi8", 0xd3, v)
  end
  if t == "number" then return string.pack(">Bd", 0xcb, v) end
  if v[RAW] then return v[RAW] end
  local out = {}
  if v[MAP] then
    out[1] = head(0x80, 15, 0xde, 0xdf, #v[MAP])
    for _, kv in ipairs(v[MAP]) do out[#out + 1] = mp.enc(kv[1]) .. mp.enc(kv[2]) end
  else
    out[1] = head(0x90, 15, 0xdc, 0xdd, v.n)
    for i = 1, v.n do out[#out + 1] = mp.enc(v[ARR][i]) end
  end
  return table.concat(out)
end

local enc, map, arr, raw = mp.enc, mp.map, mp.arr, mp.raw

-- ---- JSON: the HTTP bodies of the specs, the rules of docs/codec.md --------------------

local json_seeds = {
  deposited = '{"type":"Deposited","data":{"amount":10,"note":"\xc3\xa9","ok":true,"n":null}}',
  batch = '[{"type":"A","data":{"x":1.5}},{"type":"B","data":[1,2]}]',
  type_only = '{"type":"C"}',
  command = '{"id":1,"amount":30}',
  meta = '{"type":"T","id":"id-1","data":{},"meta":{"correlation_id":"c-1","user":"u"}}',
  numbers = '[0,-0,1,-1,1.5,-2.5e-3,1e308,1E+2,18446744073709551615,18446744073709551616,'
    .. '-9223372036854775808,-9223372036854775809,0.1,123456789012345678901234567890]',
  overflow = '[1e999999,-1e999999,1e-400]',
  strings = '["\\u00e9\\ud83d\\ude00\\n\\t\\"\\\\\\/\\b\\f\\r","caf\xc3\xa9","\xf0\x9f\x98\x80",""]',
  nesting = '[[[[[{"a":{"b":{"c":[]}}}]]]]]',
  scalars = '[{},[],"",null,true,false]',
  spaces = ' \n\t{ "a" : [ 1 , 2 ] }\r\n',
  duplicate_keys = '{"a":1,"a":2}',
  not_json = '{not json',
  trailing_comma = '[1,]',
  leading_zero = '01',
  lone_surrogate = '"\\ud800"',
  raw_control = '"a\x01b"',
  bad_utf8 = '"\xc0\x80\xed\xa0\x80"',
}
for name, text in pairs(json_seeds) do write("json", name, text) end

-- ---- msgpack: every type, the edges of each width, what Lua and JSON refuse ---------------

local every = arr({ 0, 127, 128, 255, 256, 65535, 65536, 0xffffffff, 0x100000000,
  math.maxinteger, -1, -32, -33, -128, -129, -32768, -32769, math.mininteger, 0.5, -0.0, 1 / 0,
  raw("\xca\x3d\xcc\xcc\xcd"), raw("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"), true, false, nil,
  "", "abc", string.rep("s", 40), string.rep("l", 300), raw("\xc4\x03\x00\x01\xff"),
  raw("\xc5\x00\x01\x00"), raw("\xcf\xff\xff\xff\xff\xff\xff\xff\xff") }, 33)
local msgpack_seeds = {
  every_type = enc(every),
  event_data = enc(map({ { "amount", 10 }, { "note", "\xc3\xa9" }, { "ok", true }, { "n", nil } })),
  meta = enc(map({ { "correlation_id", "c-1" }, { "causation_id", "e-9" }, { "user", "u" } })),
  odd_keys = enc(map({ { 1, "a" }, { true, 2 }, { nil, 3 }, { 1.5, 4 }, { arr({ 1, '"' }), 5 },
    { raw("\xc4\x01\xff"), 6 }, { 2.0, 7 } })),
  nan_key = enc(map({ { raw("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"), 1 } })),
  ext = enc(arr({ raw("\xd4\x01\x00"), raw("\xc7\x02\x05ab"), raw("\xd8\x07" .. string.rep("x", 16)) })),
  empty = enc(arr({ map({}), arr({}), "" })),
  wide_heads = "\xdc\x00\x02\x01\xda\x00\x01x",
  deep = string.rep("\x91", 63) .. "\x01",
  too_deep = string.rep("\x91", 65) .. "\x01",
  keys_in_keys = string.rep("\x81", 8) .. "\xa1\"" .. string.rep("\x01", 8),
  bad_utf8 = enc(arr({ "a\xffb", "\xc3(", "\xed\xa0\x80" })),
  truncated = "\x92\x01",
  trailing = "\x01\x02",
  never_used = "\xc1",
  huge_count = "\xdd\xff\xff\xff\xff\x01",
}
for name, bytes in pairs(msgpack_seeds) do write("msgpack", name, bytes) end

return { mp = mp, write = write }
