-- Readings per device (one partition each), averaged per minute. Each device
-- keeps its last 60 minutes; the minute of a reading is the time it was
-- appended, or data.at (seconds since the epoch) when the device sent one.
local ml = require "moonlog"

local KEEP = 60

local function minute_of(e)
  local seconds = e.data.at or e.time // 1000
  return seconds // 60
end

return ml.projection {
  name      = "readings",
  from      = "sensor-*",
  partition = function(e) return e.stream end,
  init      = function(device) return { device = device, minutes = {}, latest = nil, count = 0 } end,
  on = {
    Reading = function(s, e)
      local m = minute_of(e)
      local w = s.minutes[m]
      if not w then
        w = { sum = 0, n = 0, min = e.data.value, max = e.data.value }
        s.minutes[m] = w
        s.minutes[m - KEEP] = nil -- forget what left the window
      end
      w.sum, w.n = w.sum + e.data.value, w.n + 1
      if e.data.value < w.min then w.min = e.data.value end
      if e.data.value > w.max then w.max = e.data.value end
      s.latest, s.count = e.data.value, s.count + 1
    end,
  },
  queries = {
    -- average(device, minute): the mean of that minute (minutes since the epoch)
    average = function(states, device, minute)
      local s = states[device]
      local w = s and s.minutes[minute]
      return w and w.sum / w.n
    end,
    latest  = function(states, device) return states[device] and states[device].latest end,
    devices = function(states)
      local list = {}
      for device, s in pairs(states) do list[#list + 1] = { device = device, readings = s.count } end
      table.sort(list, function(a, b) return a.device < b.device end)
      return list
    end,
  },
}
