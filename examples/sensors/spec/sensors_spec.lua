-- The sensors example: per-device minute averages and threshold alerts.
local t = require "moonlog.testing"

local here = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]+$") or "examples/sensors"
local readings = dofile(here .. "/scripts/readings.lua")
local alerts = dofile(here .. "/scripts/alerts.lua")

local function reading(value, at) return t.event("Reading", { value = value, at = at }) end

describe("readings", function()
  it("averages each device's readings per minute", function()
    t.given(readings, {})
      :after {
        t.stream("sensor-a", { reading(10.0, 600), reading(20.0, 659), reading(99.0, 660) }),
        t.stream("sensor-b", { reading(1.0, 600) }),
      }
      :query("average", "sensor-a", 10):equals(15.0)
      :query("average", "sensor-a", 11):equals(99.0)
      :query("average", "sensor-b", 10):equals(1.0)
      :query("latest", "sensor-a"):equals(99.0)
      :query("devices"):equals { { device = "sensor-a", readings = 3 }, { device = "sensor-b", readings = 1 } }
  end)

  it("forgets minutes that left the 60-minute window", function()
    t.given(readings, {})
      :after { t.stream("sensor-a", { reading(5.0, 0), reading(7.0, 60 * 60) }) }
      :query("average", "sensor-a", 0):equals(nil)
      :query("average", "sensor-a", 60):equals(7.0)
  end)
end)

describe("alerts", function()
  it("emits ThresholdExceeded above the limit only", function()
    t.given(alerts, {})
      :after { t.stream("sensor-a", { reading(79.0), reading(80.5) }) }
      :emitted { { stream = "alert-a", type = "ThresholdExceeded",
                   data = { device = "sensor-a", value = 80.5, limit = 80.0, position = 2 } } }
  end)
end)
