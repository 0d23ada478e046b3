-- The sensors example against the real server: readings partitioned per device
-- with per-minute averages, and the alerts handler emitting ThresholdExceeded.
local server = require "support.server"
local socket = require "socket"

local here = (os.getenv("MOONLOG_SOURCE_DIR") or ".") .. "/examples/sensors"

local function settled(c)
  local deadline = socket.gettime() + 10
  repeat
    local all = true
    for _, st in ipairs(assert(c:call("scripts"))) do all = all and st.lag == 0 end
    if all then return end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  error("the scripts did not reach the head")
end

describe("examples/sensors served", function()
  after_each(server.stop_all)

  it("averages readings per device and minute, and raises alerts", function()
    local s = server.start { args = { "--scripts", here .. "/scripts" } }
    local c = s.client
    local minute = 29000000
    for _, r in ipairs { { "sensor-a", 20.0, 0 }, { "sensor-a", 30.0, 10 }, { "sensor-a", 90.5, 70 },
                         { "sensor-b", 50.0, 5 } } do
      assert(c:append(r[1], { type = "Reading", data = { value = r[2], at = minute * 60 + r[3] } }))
    end
    settled(c)
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
