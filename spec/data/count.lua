-- A projection that counts the Added events of the item-* streams and sums their `v`: the
-- crash specs (spec/e2e/scripts_crash_spec.lua) and the soak (tools/soak.lua) compare its
-- totals with what they appended.
local ml = require "moonlog"
return ml.projection {
  name = "count", from = "item-*",
  init = function() return { n = 0, sum = 0 } end,
  on = { Added = function(s, e) s.n = s.n + 1; s.sum = s.sum + e.data.v end },
  queries = { totals = function(s) return { n = s.n, sum = s.sum } end },
}
