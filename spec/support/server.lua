-- The specs' name for the server harness users get too: lua/moonlog/testing/server.lua.
return require "moonlog.testing.server"
