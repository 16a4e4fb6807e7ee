// Replays a fuzz family's corpus (tests/fuzz/corpus/<family>) through its
// harness: every input found so far, crashes fixed included, runs clean in
// every build. A harness aborts on a broken property, which fails the test.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "tests/fuzz/fuzz.hpp"

namespace {

TEST(DROVER_FUZZ_SUITE, EveryInputRunsClean) {
  std::size_t inputs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(DROVER_FUZZ_CORPUS)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    SCOPED_TRACE(entry.path().filename().string());
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    ++inputs;
  }
  EXPECT_GT(inputs, 0u) << "no corpus in " << DROVER_FUZZ_CORPUS;
}

}  // namespace
