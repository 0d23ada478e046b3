-- Emits ThresholdExceeded on alert-<device> for each reading above its limit.
local ml = require "moonlog"

local LIMIT = 80.0

return ml.handler {
  name = "alerts",
  from = "sensor-*",
  on = {
    Reading = function(e, ctx)
      local limit = e.data.limit or LIMIT
      if e.data.value > limit then
        local device = e.stream:match("^sensor%-(.+)$")
        ctx.emit("alert-" .. device, "ThresholdExceeded",
          { device = e.stream, value = e.data.value, limit = limit, position = e.position })
      end
    end,
  },
}
