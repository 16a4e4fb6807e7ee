// The libFuzzer entry point every harness in tests/fuzz defines (one per
// binary), and the corpus replay test calls.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
