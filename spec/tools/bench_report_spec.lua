-- bench/lib/report.lua: moonlog's factor over each peer is taken against its durable row,
-- never against the no-sync ceiling row that workload 1 measures beside it.
local SOURCE = assert(os.getenv("MOONLOG_SOURCE_DIR"))
package.path = SOURCE .. "/bench/lib/?.lua;" .. package.path
local R = require "report"

local W = { name = "1 append, 64 conns", metric = "", unit = "events/s", better = "higher" }
local L = { name = "4 live latency", metric = "p50", unit = "us", better = "lower" }

local function row(w, system, setting, values, ceiling)
  local r = R.row(w, system, setting, values)
  r.ceiling = ceiling
  return r
end

describe("bench report", function()
  it("takes the ratios against the durable moonlog row, wherever the ceiling row stands", function()
    for _, ceiling_first in ipairs({ true, false }) do
      local durable = row(W, "moonlog", "--fsync always (default)", { 400, 500, 600 })
      local ceiling = row(W, "moonlog", "--fsync never (ceiling)", { 700, 800, 900 }, true)
      local redis = row(W, "redis", "appendfsync always", { 200, 250, 300 })
      local rows = ceiling_first and { ceiling, durable, redis } or { durable, ceiling, redis }
      R.ratios(rows)
      assert.are.equal(2, redis.ratio) -- 500 / 250, not 800 / 250
      assert.is_nil(durable.ratio)
      assert.is_nil(ceiling.ratio)
    end
  end)

  it("gives no ratio when only the ceiling row was measured", function()
    local ceiling = row(W, "moonlog", "--fsync never (ceiling)", { 800 }, true)
    local durable = row(W, "moonlog", "--fsync always (default)", nil) -- failed: no values
    local redis = row(W, "redis", "appendfsync always", { 250 })
    R.ratios({ ceiling, durable, redis })
    assert.is_nil(redis.ratio)
  end)

  it("turns a latency ratio the other way (the peer over moonlog)", function()
    local durable = row(L, "moonlog", "--fsync always (default)", { 200 })
    local redis = row(L, "redis", "appendfsync always", { 300 })
    R.ratios({ durable, redis })
    assert.are.equal(1.5, redis.ratio)
  end)

  it("prints the ceiling row with its setting and no ratio", function()
    local rows = {
      row(W, "moonlog", "--fsync always (default)", { 500 }),
      row(W, "moonlog", "--fsync never (no sync: ceiling, not durable)", { 800 }, true),
      row(W, "redis", "appendfsync always", { 250 }),
    }
    R.ratios(rows)
    local text = R.table(rows)
    local line = text:match("[^\n]*ceiling, not durable[^\n]*")
    assert.is_truthy(line and line:find("800 events/s", 1, true))
    assert.is_falsy(line:find("x%s*$"))
    assert.is_truthy(text:find("2.00x", 1, true))
  end)
end)
