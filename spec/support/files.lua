-- The specs' name for lua/moonlog/testing/files.lua.
return require "moonlog.testing.files"
