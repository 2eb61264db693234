#ifndef PORTICO_CFUZZDRIVER_H
#define PORTICO_CFUZZDRIVER_H
#include <stddef.h>
#include <stdint.h>

/// Hands control to libFuzzer (its LLVMFuzzerRunDriver) with the process arguments. SwiftPM
/// gives each executable its own entry symbol, so the fuzz targets cannot use libFuzzer's main.
int portico_fuzz_run(int argc, char **argv, int (*test_one_input)(const uint8_t *data, size_t size));

#endif
