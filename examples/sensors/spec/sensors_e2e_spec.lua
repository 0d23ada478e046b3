-- The sensors example against the real server: readings partitioned per device
-- with per-minute averages, and the alerts handler emitting ThresholdExceeded.
local server = require "moonlog.testing.server" -- starts `moonlog serve` (run with `moonlog test`)

describe("examples/sensors served", function()
  after_each(server.stop_all)

  it("averages readings per device and minute, and raises alerts", function()
    local s = server.start { args = { "--scripts", server.source "examples/sensors/scripts" } }
    local c = s.client
    local minute = 29000000
    for _, r in ipairs { { "sensor-a", 20.0, 0 }, { "sensor-a", 30.0, 10 }, { "sensor-a", 90.5, 70 },
                         { "sensor-b", 50.0, 5 } } do
      assert(c:append(r[1], { type = "Reading", data = { value = r[2], at = minute * 60 + r[3] } }))
    end
    server.at_head(c, "readings") -- both scripts have seen every reading
    server.at_head(c, "alerts")
    assert.equal(25.0, assert(c:call("query", "readings", "average", "sensor-a", minute)))
    assert.equal(90.5, assert(c:call("query", "readings", "latest", "sensor-a")))
    assert.same({ { device = "sensor-a", readings = 3 }, { device = "sensor-b", readings = 1 } },
      assert(c:call("query", "readings", "devices")))
    local code, body = s:curl_json("GET", "/projections/readings/average?arg=sensor-a&arg=" .. minute)
    assert.same({ 200, 25.0 }, { code, body })
    code, body = s:curl_json("GET", "/projections/readings?key=sensor-b")
    assert.same({ 200, 1, 50.0 }, { code, body.count, body.latest })
    local alerts = assert(c:read("alert-a"))
    assert.equal(1, #alerts)
    assert.equal("ThresholdExceeded", alerts[1].type)
    assert.same({ device = "sensor-a", value = 90.5, limit = 80.0 },
      { device = alerts[1].data.device, value = alerts[1].data.value, limit = alerts[1].data.limit })
    assert.same({}, assert(c:read("alert-b")))
  end)
end)
