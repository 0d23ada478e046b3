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

-- ---- segment files (runtime/log/record.h), after a flags byte (fuzz_log.c) ---------------

local crc_table = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do c = (c & 1) ~= 0 and (c >> 1) ~ 0x82f63b78 or c >> 1 end
  crc_table[i] = c
end
local function crc32c(s, crc)
  crc = (crc or 0) ~ 0xffffffff
  for i = 1, #s do crc = crc_table[(crc ~ s:byte(i)) & 0xff] ~ (crc >> 8) end
  return crc ~ 0xffffffff
end

local function segment_header(first)
  local h = "MOONLOG\0" .. string.pack("<I4I4I8i8", 1, 64, first, 1700000000000) .. string.rep("\0", 28)
  return h .. string.pack("<I4", crc32c(h))
end

-- e = {stream, type, id, data, meta, generated}; flags: 1 first of its batch, 2 last.
local function record(e, flags, left, position, version)
  local id, meta, data = e.id or "", e.meta or "", e.data or ""
  local body = string.pack("<BBBBI4I4I4I8I8i8", flags | (e.generated and 4 or 0), #e.stream,
    #e.type, #id, #meta, #data, left, position, version, 1700000000000 + position)
    .. e.stream .. e.type .. id .. meta .. data
  local len = string.pack("<I4", 4 + 4 + #body)
  return len .. string.pack("<I4", crc32c(body, crc32c(len))) .. body
end

-- Batches of events from position `first`: {{e, e}, {e}} -> the records, back to back.
local function batches(first, list)
  local out, pos, versions = {}, first, {}
  for _, b in ipairs(list) do
    for i, e in ipairs(b) do
      versions[e.stream] = (versions[e.stream] or 0) + 1
      local flags = (i == 1 and 1 or 0) | (i == #b and 2 or 0)
      out[#out + 1] = record(e, flags, #b - i, pos, versions[e.stream])
      pos = pos + 1
    end
  end
  return table.concat(out)
end

local dep = { stream = "account-1", type = "Deposited", data = enc(map({ { "amount", 10 } })) }
local wd = { stream = "account-1", type = "Withdrawn", data = enc(map({ { "amount", 3 } })),
  id = "0190a5b2-1c3d-7e4f-8a9b-0c1d2e3f4a5b", generated = true }
local placed = { stream = "order-7", type = "Placed", id = "id-1", data = enc(map({})),
  meta = enc(map({ { "correlation_id", "c-1" }, { "causation_id", "e-9" } })) }
local odd = { stream = "x", type = "T", data = "\xc1not msgpack", meta = "\x92\x01" }
local one = batches(1, { { dep } })
local three = batches(1, { { dep, placed, wd }, { placed } })
local log_seeds = {
  empty = "\0" .. segment_header(1),
  one_event = "\0" .. segment_header(1) .. one,
  batches = "\0" .. segment_header(1) .. three .. string.rep("\0", 64),
  torn_tail = "\0" .. segment_header(1) .. three:sub(1, -20),
  unfinished_batch = "\0" .. segment_header(1) .. batches(1, { { dep } }) ..
      record(placed, 1, 1, 2, 1),
  two_segments = "\0" .. segment_header(1) .. batches(1, { { dep, wd } }) .. segment_header(3) ..
      record(placed, 3, 0, 3, 1),
  damage_then_good = "\0" .. segment_header(1) .. one .. ("\xff"):rep(48) ..
      record(placed, 3, 0, 2, 1),
  bytes_not_msgpack = "\0" .. segment_header(1) .. batches(1, { { odd } }),
  fix_checksums = "\3" .. segment_header(1):sub(1, 60) .. "\0\0\0\0" .. three:gsub("^(....)....", "%1\0\0\0\0"),
  bad_version = "\0" .. segment_header(1):sub(1, 8) .. string.pack("<I4", 2) ..
      segment_header(1):sub(13) .. one,
  out_of_sequence = "\0" .. segment_header(5) .. one,
}
for name, bytes in pairs(log_seeds) do write("log", name, bytes) end

-- ---- msgpack-RPC: what the spec client sends (spec/e2e/server_*_spec.lua) ----------------

local msgid = 0
local function req(method, ...)
  msgid = msgid + 1
  return enc(arr({ 0, msgid, method, arr({ ... }, select("#", ...)) }, 4))
end
local function ev(type_, data, extra)
  local kv = { { "type", type_ }, { "data", data } }
  for _, p in ipairs(extra or {}) do kv[#kv + 1] = p end
  return map(kv)
end
local amount10 = map({ { "amount", 10 } })
local rpc_seeds = {
  append_read = req("append", "account-1", ev("Deposited", amount10), "no_stream")
    .. req("append", "account-1", arr({ ev("Deposited", map({ { "amount", 5 } })),
      ev("Withdrawn", map({ { "amount", 3 } })) }), 1)
    .. req("append", "account-1", ev("Deposited", amount10), 1)
    .. req("append", "account-2", ev("X", nil), "exists")
    .. req("read", "account-1") .. req("read", "account-1", nil, 2, true) .. req("read", "$all", 2)
    .. req("read", "nobody-1"),
  idempotent = req("append", "order-7", ev("Placed", map({}), { { "id", "id-1" } }))
    .. req("append", "order-7", ev("Paid", map({})))
    .. req("append", "order-7", ev("Placed", map({}), { { "id", "id-1" } })),
  meta = req("append", "s-1", ev("T", arr({ 1, "two", 3.5, true }),
    { { "meta", map({ { "correlation_id", "c-1" }, { "user", "u" } }) } }), "any"),
  subscribe = req("append", "account-1", ev("Deposited", amount10))
    .. req("subscribe", "*", 0) .. req("subscribe", arr({ "account-*", "order-7" }), nil)
    .. req("subscribe", map({ { "streams", "account-*" }, { "types", arr({ "Deposited" }) } }), 0)
    .. req("unsubscribe", 1) .. req("unsubscribe", 99),
  group = req("append", "job-1", ev("Queued", map({})))
    .. req("subscribe", "job-*", 0, map({ { "group", "workers" }, { "ack_timeout_ms", 100 },
      { "max_deliveries", 2 }, { "max_inflight", 4 } }))
    .. req("ack", "workers", 1) .. req("subscribe", "job-*", 0, "workers"),
  admin = req("stats") .. req("auth", "secret-token") .. req("eval", "return 1")
    .. req("complete", "lo"),
  scripts = req("command", "counter", "Add", map({ { "id", 1 }, { "by", 5 }, { "note", "n" } }))
    .. req("command", "counter", "Add", map({ { "id", 1 }, { "by", "x" } }))
    .. req("command", "counter", "Reset", map({ { "id", 2 } }))
    .. req("command", "nobody", "Add", map({}))
    .. req("query", "types", "count", "T") .. req("query", "types", "echo", 1, arr({ 2 }), map({}))
    .. req("query", "types", "total") .. req("get", "counter-1") .. req("get", "counter", "counter-1")
    .. req("state", "types") .. req("state", "counter", "counter-1") .. req("scripts")
    .. req("reload", "types") .. req("parked", "notes") .. req("replay_parked", "notes"),
  not_requests = enc(arr({ 1, 2, 3, 4 })) .. enc(arr({ 0, -1, "stats", arr({}) }))
    .. enc(arr({ 0, 0x100000000, "stats", arr({}) })) .. enc(arr({ 0, 7, 8, arr({}) }))
    .. enc(arr({ 0, 8, "stats", 1 })) .. enc(arr({ 0, 9, "nope", arr({}) })) .. enc("hello")
    .. enc(arr({ 2, "event", arr({}) })),
  bad_params = req("append", 1) .. req("append", "s", arr({})) .. req("append", "s", map({}))
    .. req("append", "s", ev("", nil)) .. req("append", "s", ev("T", nil, { { "meta", 1 } }))
    .. req("append", "s", ev("T", nil), "sometimes") .. req("append", "s", ev("T", nil), -1)
    .. req("read", 5) .. req("read", "s", "x") .. req("read", "$all", 1, 1, true)
    .. req("subscribe") .. req("subscribe", 5) .. req("subscribe", "*", "x")
    .. req("subscribe", "*", 0, map({ { "ack_timeout_ms", 5 } })) .. req("ack", "g")
    .. req("unsubscribe", "x") .. req("auth") .. req("command", "counter")
    .. req("query", 1) .. req("get") .. req("state") .. req("reload", 1) .. req("parked"),
  malformed = "\x94\x00\x01\xa5stats\x90\xc1",
  cut_short = "\x94\x00\x01\xa6append\x92\xa1s\x82\xa4type\xa1T\xa4data\xdb\x00\x00\x10",
  ext_data = req("append", "s-1", ev("T", raw("\xd4\x05\x00"))) .. req("read", "s-1"),
}
for name, bytes in pairs(rpc_seeds) do write("rpc", name, bytes) end

-- ---- HTTP: what the specs send with curl (spec/e2e/server_http_spec.lua and others) -----

local function http(method, path, body, headers)
  local h = { method .. " " .. path .. " HTTP/1.1", "Host: 127.0.0.1" }
  for _, line in ipairs(headers or {}) do h[#h + 1] = line end
  if body then
    h[#h + 1] = "Content-Type: application/json"
    h[#h + 1] = "Content-Length: " .. #body
  end
  return table.concat(h, "\r\n") .. "\r\n\r\n" .. (body or "")
end
local http_seeds = {
  append_read = http("POST", "/streams/account-1", json_seeds.deposited)
    .. http("POST", "/streams/account-1", json_seeds.batch, { 'If-Match: "1"' })
    .. http("POST", "/streams/account-1", '{"type":"C"}', { "If-Match: 1" })
    .. http("GET", "/streams/account-1?from=1&limit=10")
    .. http("GET", "/streams/account-1?backwards=true&limit=1") .. http("GET", "/all?from=2"),
  expected = http("POST", "/streams/s-1", '{"type":"T"}', { "If-Match: no_stream" })
    .. http("POST", "/streams/s-1", '{"type":"T"}', { "If-Match: *" })
    .. http("POST", "/streams/s-1", '{"type":"T"}', { 'If-Match: "7"' })
    .. http("POST", "/streams/s-1", '{"type":"T","id":"i-1"}')
    .. http("POST", "/streams/s-1", '{"type":"T","id":"i-1"}'),
  errors = http("POST", "/streams/x-1", "{not json") .. http("POST", "/streams/x-1", '{"data":{}}')
    .. http("GET", "/streams/nobody-1") .. http("GET", "/no/such/route") .. http("DELETE", "/all")
    .. http("GET", "/all?from=abc") .. http("POST", "/streams/$system", '{"type":"T"}')
    .. http("GET", "/eval") .. http("PUT", "/streams/x-1", "{}"),
  status = http("GET", "/health") .. http("GET", "/stats") .. http("GET", "/metrics")
    .. http("GET", "/scripts") .. http("HEAD", "/health") .. http("GET", "/health"),
  scripts = http("POST", "/commands/counter/Add", '{"id":1,"by":5,"note":"n"}')
    .. http("POST", "/commands/counter/Add", '{"id":1,"by":"x"}')
    .. http("POST", "/commands/counter/Nope", "{}") .. http("POST", "/commands/missing/Open", "{}")
    .. http("POST", "/commands/counter/Add", "[1,2]") .. http("GET", "/commands/counter/Add")
    .. http("GET", "/projections/types/count?arg=T") .. http("GET", "/projections/types")
    .. http("GET", "/projections/types/echo?arg=1&arg=two") .. http("GET", "/reducers/counter/counter-1")
    .. http("GET", "/projections/types/nope") .. http("GET", "/projections/missing")
    .. http("POST", "/scripts/types/reload") .. http("GET", "/scripts/notes/parked")
    .. http("POST", "/scripts/notes/parked/replay") .. http("POST", "/scripts/reload"),
  subscribe = http("POST", "/streams/account-1", json_seeds.deposited)
    .. http("GET", "/subscribe?pattern=account-*,order-7&types=Deposited&from=0"),
  last_event_id = http("GET", "/subscribe", nil, { "Last-Event-ID: 0" }),
  auth = http("GET", "/stats", nil, { "Authorization: Bearer wrong-token" }),
  two_lengths = "POST /streams/s-1 HTTP/1.1\r\nContent-Length: 12\r\nContent-Length: 13\r\n\r\n"
    .. '{"type":"T"} ',
  chunked = "POST /streams/s-1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"typ\r\n"
    .. "7\r\ne\":\"T\"}\r\n0\r\n\r\n",
  http10 = "GET /health HTTP/1.0\r\n\r\n",
  escapes = http("GET", "/streams/a%2Fb%00c?from=%31&limit=") .. http("GET", "/all?from=1&from=2&limit=18446744073709551616"),
  cut_short = "POST /streams/s-1 HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"type\":",
  garbage = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
}
for name, bytes in pairs(http_seeds) do write("http", name, bytes) end

-- ---- journal entries (runtime/log/entry.c; format 1 in entry1.c) --------------------------

local function varint(n)
  local out = {}
  repeat
    local b = n & 0x7f
    n = n >> 7
    out[#out + 1] = string.char(n > 0 and (b | 0x80) or b)
  until n == 0
  return table.concat(out)
end
local function zigzag(n) return (n << 1) ~ (n < 0 and -1 or 0) end
local function bytes(s) return varint(#s) .. s end

-- format 2: flags then the fields each flag asks for (entry.c)
local function event2(flags, e)
  local out = { string.char(flags) }
  if flags & 4 == 0 then out[#out + 1] = bytes(e.stream) end
  if flags & 8 == 0 then out[#out + 1] = bytes(e.type) end
  out[#out + 1] = flags & 2 ~= 0 and e.id or bytes(e.id)
  if flags & 16 ~= 0 then out[#out + 1] = bytes(e.meta) end
  if flags & 32 ~= 0 then out[#out + 1] = bytes(e.data) end
  return table.concat(out)
end
-- flags: 1 system, 2 the time is a difference from the first id's, 4 one event and no counts
local function entry2(flags, events, expect, time)
  local out = { "\x02" .. string.char(flags) }
  if flags & 4 == 0 then out[#out + 1] = varint(#events) .. varint(#expect) end
  out[#out + 1] = varint(zigzag(time))
  for _, x in ipairs(expect) do out[#out + 1] = bytes(x[1]) .. varint(zigzag(x[2])) end
  for _, e in ipairs(events) do out[#out + 1] = event2(e[1], e[2]) end
  return table.concat(out)
end
local uuid16 = "\x01\x90\xd6\xa3\x7c\x2e\x7a\xbc\x9d\xef\x01\x23\x45\x67\x89\xab"
local data100 = "\x82\xa1t\xcf" .. ("\0"):rep(8) .. "\xa3pad\xd9\x52" .. ("x"):rep(82)

local entry_seeds = {
  bench = entry2(2 | 4, { { 1 | 2 | 32, { stream = "bench-1", type = "Measured", id = uuid16, data = data100 } } },
    {}, 1),
  batch = entry2(0, {
    { 1 | 2 | 16 | 32, { stream = "acct-1", type = "Opened", id = uuid16, meta = "\x81\xa1k\x01", data = "\x80" } },
    { 4 | 32, { type = "Deposited", id = "d-1", data = "\x81\xa1a\x0a" } },
    { 4 | 8 | 2 | 32, { id = uuid16, data = "\x81\xa1a\x14" } },
    { 8, { stream = "acct-2", id = "0190D6A3-7C2E-7DEF-8123-456789ABCDEF" } },
  }, { { "acct-1", 0 }, { "acct-2", -1 }, { "acct-3", -2 }, { "acct-4", 1 << 40 } }, 1700000000000),
  system = entry2(1, { { 1 | 2, { stream = "$lease-h", type = "Acquired", id = uuid16 } } },
    { { "$lease-h", 3 } }, -5),
  format1 = string.pack("<BBI2I4I4i8", 1, 0, 0, 2, 1, 1700000000000)
    .. string.pack("<Bi8", 6, 0) .. "acct-1"
    .. string.pack("<BBBBI4I4", 1, 6, 6, 36, 4, 1) .. "acct-1" .. "Opened"
    .. "0190d6a3-7c2e-7abc-9def-0123456789ab" .. "\x81\xa1k\x01" .. "\x80"
    .. string.pack("<BBBBI4I4", 0, 6, 9, 3, 0, 4) .. "acct-1" .. "Deposited" .. "d-1" .. "\x81\xa1a\x0a",
}
for name, b in pairs(entry_seeds) do write("entry", name, b) end

-- ---- JetStream message bodies (plugins/jetstream/message.c) -----------------------------

local node16 = uuid16
local function message2(first_token, entries)
  local out = { "MLJ2", node16, varint(first_token) }
  for _, e in ipairs(entries) do out[#out + 1] = bytes(e) end
  return table.concat(out)
end
local many = {}
for i = 1, 40 do many[i] = entry_seeds.bench end
local message_seeds = {
  one = message2(1, { entry_seeds.bench }),
  batch = message2(41, { entry_seeds.batch, entry_seeds.system, entry_seeds.bench }),
  many = message2(7, many),
  format1 = "MLJ1" .. "0190d6a3-7c2e-7abc-9def-0123456789ab" .. string.pack(">I4", 2)
    .. string.pack(">I8I4", 7, #entry_seeds.format1) .. entry_seeds.format1
    .. string.pack(">I8I4", 8, #entry_seeds.bench) .. entry_seeds.bench,
}
-- A compressed one (MLZ2: a zstd frame with its size and a checksum), made by the zstd
-- program when it is there (Debian's zstd); the fuzzer mutates it from here.
local tmp = os.tmpname()
local f = assert(io.open(tmp, "wb"))
f:write(message_seeds.many)
f:close()
local z = io.popen("zstd -1 -q -c --check " .. tmp .. " 2>/dev/null")
local frame = z and z:read("a")
if z then z:close() end
os.remove(tmp)
if frame and #frame > 0 then message_seeds.compressed = "MLZ2" .. frame end
for name, b in pairs(message_seeds) do write("message", name, b) end

return { mp = mp, write = write }
