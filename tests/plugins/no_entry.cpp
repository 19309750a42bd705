// A valid shared library that is not a drift plugin (no drift_plugin_entry).
extern "C" int some_unrelated_function() { return 42; }
