-- spec/support/fails_with.lua: calls fn, which must raise an error containing `fragment`
-- (plain text); returns the error.
--
--   local fails_with = require "support.fails_with"
--   fails_with('unknown key "oops"', function() ml.reducer { oops = 1 } end)

return function(fragment, fn)
  local ok, err = pcall(fn)
  assert(not ok, "expected an error containing: " .. fragment)
  err = tostring(err)
  assert(err:find(fragment, 1, true),
    "expected an error containing:\n  " .. fragment .. "\nbut got:\n  " .. err)
  return err
end
