-- spec/data/stream_patterns.lua: the cases the stream-pattern rules are held to, in one
-- place for both copies of the rules: lua/moonlog/filter.lua (spec/lua/filter_spec.lua)
-- and runtime/route/pattern.c (runtime/test/test_route.c, which loads this file).
return {
  -- pattern, stream, does the pattern take the stream?
  matches = {
    { "*", "account-1", true },
    { "*", "x", true },
    { "*", "$parked-mailer", false },
    { "*", "$all", false },
    { "$all", "$parked-mailer", true },
    { "$all", "account-1", true },
    { "account-*", "account-1", true },
    { "account-*", "account-1-2", true },
    { "account-*", "account-", true },
    { "account-*", "account", false },
    { "account-*", "accounts-1", false },
    { "account-*", "x-account-1", false },
    { "acc*", "account-1", true },
    { "acc*", "acc", true },
    { "acc*", "ac", false },
    { "$parked-*", "$parked-mailer", true },
    { "$parked-*", "parked-mailer", false },
    { "account", "account", true },
    { "account", "account-1", true },
    { "account", "account-1-2", true },
    { "account", "accounts-1", false },
    { "account", "accountx", false },
    { "account", "acc", false },
    { "account-42", "account-42", true },
    { "account-42", "account-421", false },
    { "account-42", "account-42-x", false },
    { "account-42", "account-4", false },
    { "$parked", "$parked-mailer", true },
    { "$parked", "$parked", true },
  },
  -- patterns that are refused, and a word of why (as filter.lua and pattern.c say it)
  invalid = {
    { "a*b", '"*" only at the end' },
    { "**", '"*" only at the end' },
    { "", "empty" },
  },
}
