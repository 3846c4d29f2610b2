// Fixture: a shared library that forgot LOFT_PLUGIN(...).
extern "C" __attribute__((visibility("default"))) int some_other_symbol(void) { return 42; }
