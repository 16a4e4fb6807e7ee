// drover-bench-store: throughput of the artifact store and the bytes an
// incremental push moves, next to the baselines a user would reach for
// (sha256sum over the same bytes; tar piped through zstd -T0), all measured in
// the same run on the same tree. Prints Markdown tables.
//
//   build/bin/drover-bench-store [--work DIR] [--runs N] [--changes K] [--no-sweep]
#include <algorithm>
#include <cstdio>
#include <cxxopts.hpp>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/log/log.hpp"
#include "store/artifact_store.hpp"
#include "tests/support/test_support.hpp"
#include "tests/support/tree_gen.hpp"

namespace drover::bench {
namespace {

namespace fs = std::filesystem;
using drover::testing::ProcessResult;
using drover::testing::run;

double mib(std::uint64_t bytes) {
  return static_cast<double>(bytes) / (1 << 20);
}

struct Timing {
  double wall = 0;  // median seconds
  double cpu = 0;   // user + system seconds of the median run
};

ProcessResult sh(const std::string& script) {
  ProcessResult r = run({"/bin/bash", "-c", script}, std::chrono::minutes(20));
  if (r.exit_code != 0) {
    std::cerr << "command failed (" << r.exit_code << "): " << script << "\n" << r.err << "\n";
    std::exit(1);
  }
  return r;
}

// Runs command `runs` times and returns the median. Each run writes to a
// fresh name ({N} in the command is replaced by the run number) and nothing is
// deleted until the end: on ext4, creating files right after deleting thousands
// makes the inode allocator scan (find_inode_bit/recently_deleted in perf), which
// slowed every writer here by 30-100% and hid the real differences.
Timing measure(int runs, const std::string& command) {
  static int serial = 0;
  std::vector<std::pair<double, double>> samples;
  for (int i = 0; i < runs; ++i) {
    std::string cmd = command;
    const std::string n = std::to_string(++serial);
    for (std::size_t at; (at = cmd.find("{N}")) != std::string::npos;) cmd.replace(at, 3, n);
    sh("sync");  // no run pays for another's writeback
    ProcessResult r = sh(cmd);
    samples.emplace_back(r.wall_seconds, r.cpu_seconds);
  }
  std::sort(samples.begin(), samples.end());
  auto [wall, cpu] = samples[samples.size() / 2];
  return {wall, cpu};
}

struct ChangeResult {
  std::uint64_t file_bytes;
  std::uint64_t new_bytes;
};

// Pushes v1, then for each chosen file: rewrite it, push, note the new bytes,
// restore it. Every v2 differs from v1 in exactly one file.
struct SweepRow {
  std::uint64_t layer_target;
  bool compress;
  std::size_t layers;
  std::uint64_t stored;
  double push_seconds;
  std::vector<ChangeResult> changes;
};

SweepRow sweep(const fs::path& tree, const fs::path& store_dir, const std::vector<fs::path>& picks,
               std::uint64_t layer_target, bool compress) {
  PosixFilesystem fsys;
  SystemClock clock;
  SystemRandom random;
  store::StoreOptions options;
  options.pack.layer_target = layer_target;
  options.pack.pack_cap = 4 * layer_target;
  options.pack.encoding.compress = compress;
  fs::remove_all(store_dir);
  auto st = store::ArtifactStore::open(store_dir, fsys, clock, random, Logger::discard(), options);
  if (!st.ok()) {
    std::cerr << st.error().message << "\n";
    std::exit(1);
  }
  store::PackInput input{"bench", "0123abcd", {}};
  auto t0 = std::chrono::steady_clock::now();
  auto v1 = (*st)->push(tree, input);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!v1.ok()) {
    std::cerr << v1.error().message << "\n";
    std::exit(1);
  }
  SweepRow row{layer_target, compress, v1->manifest.layers.size(), v1->record.size_bytes, secs, {}};
  std::uint64_t seed = 99;
  for (const auto& rel : picks) {
    fs::path file = tree / rel;
    std::string original = drover::testing::read_file(file);
    const auto mode = static_cast<unsigned>(fs::status(file).permissions());
    drover::testing::change_file(file, ++seed);
    auto v2 = (*st)->push(tree, input);
    drover::testing::write_file(file, original, mode);
    if (!v2.ok()) {
      std::cerr << v2.error().message << "\n";
      std::exit(1);
    }
    row.changes.push_back({original.size(), v2->new_bytes});
  }
  return row;
}

int main_impl(int argc, char** argv) {
  cxxopts::Options o("drover-bench-store", "Artifact store throughput and incremental bytes.");
  o.add_options()("work", "work directory (default: a new temporary one)",
                  cxxopts::value<std::string>())("runs", "timed runs per command (median)",
                                                 cxxopts::value<int>()->default_value("3"))(
      "changes", "one-file changes to measure", cxxopts::value<int>()->default_value("6"))(
      "no-sweep", "skip the layer-size sweep")("h,help", "help");
  auto args = o.parse(argc, argv);
  if (args.count("help")) {
    std::cout << o.help() << "\n";
    return 0;
  }
  const int runs = args["runs"].as<int>();
  std::unique_ptr<drover::testing::TempDir> tmp;
  fs::path work;
  if (args.count("work")) {
    work = args["work"].as<std::string>();
    fs::create_directories(work);
  } else {
    tmp = std::make_unique<drover::testing::TempDir>();
    work = tmp->path();
  }
  const fs::path tree = work / "tree";
  const fs::path drover = drover::testing::binary("drover");

  std::cout << "## drover-bench-store\n\n";
  std::printf("machine: %s",
              sh("nproc; uname -r; grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").out.c_str());
  auto gen_start = std::chrono::steady_clock::now();
  fs::remove_all(tree);
  auto generated = drover::testing::generate_tree(tree, drover::testing::mixed_512mib());
  sh("sync");
  std::printf("tree: %zu files, %.1f MiB, generated in %.1f s (page cache warm for every run)\n\n",
              generated.files.size(), mib(generated.bytes),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - gen_start).count());

  const std::string T = tree.string(), W = work.string(), D = drover.string();
  const std::string store = W + "/store", tarball = W + "/tree.tar.zst";
  const std::string leftovers = W + "/store* " + W + "/*.zst " + W + "/mat-* " + W + "/untar-*";
  sh("rm -rf " + leftovers);
  Timing sha =
      measure(runs, "cd " + T + " && find . -type f -print0 | xargs -0 sha256sum > /dev/null");
  Timing push =
      measure(runs, D + " artifact push --no-register " + T +
                        " --service bench --git-sha 0123abcd --store " + W + "/store-{N}");
  Timing tar = measure(runs, "tar -C " + T + " -cf - . | zstd -T0 -3 -q -o " + W + "/tar-{N}.zst");
  Timing tar_sync =
      measure(runs, "tar -C " + T + " -cf - . | zstd -T0 -3 -q -o " + W + "/tar-{N}.zst && sync");
  sh("rm -rf " + W + "/store-* " + W + "/tar-*.zst");  // few inodes: no allocator slowdown
  sh(D + " artifact push --no-register " + T + " --service bench --git-sha 0123abcd --store " +
     store + " && tar -C " + T + " -cf - . | zstd -T0 -3 -q -o " + tarball);
  auto listed = nlohmann::json::parse(sh(D + " artifact ls --store " + store + " --json").out)[0];
  const std::string id = listed["artifact_id"].get<std::string>();
  const std::uint64_t stored = listed["size_bytes"].get<std::uint64_t>();
  Timing mat =
      measure(runs, D + " artifact materialize " + id + " " + W + "/mat-{N} --store " + store);
  Timing untar = measure(runs, "mkdir " + W + "/untar-{N} && zstd -d -q -c " + tarball +
                                   " | tar -C " + W + "/untar-{N} -xf -");
  Timing untar_sync = measure(runs, "mkdir " + W + "/untar-{N} && zstd -d -q -c " + tarball +
                                        " | tar -C " + W + "/untar-{N} -xf - && sync");
  const std::uint64_t tarball_bytes = fs::file_size(tarball);
  sh("rm -rf " + leftovers);

  auto rate = [&](const Timing& t) { return mib(generated.bytes) / t.wall; };
  std::printf("### Throughput over the same %.1f MiB (median of %d runs)\n\n", mib(generated.bytes),
              runs);
  std::printf(
      "| command | seconds | MiB/s | CPU s | vs sha256sum | vs tar+zstd "
      "|\n|---|---|---|---|---|---|\n");
  auto line = [&](const char* name, const Timing& t, const Timing* peer) {
    std::printf("| %s | %.2f | %.0f | %.2f | %.2fx | %s |\n", name, t.wall, rate(t), t.cpu,
                rate(t) / rate(sha),
                peer ? (std::to_string(rate(t) / rate(*peer)).substr(0, 4) + "x").c_str() : "");
  };
  line("sha256sum (every file)", sha, nullptr);
  line("drover artifact push (fsync, new store)", push, &tar);
  line("tar -cf - | zstd -T0 -3", tar, nullptr);
  line("tar -cf - | zstd -T0 -3; sync", tar_sync, nullptr);
  line("drover artifact materialize (verify, syncfs)", mat, &untar);
  line("zstd -d | tar -xf -", untar, nullptr);
  line("zstd -d | tar -xf -; sync", untar_sync, nullptr);
  std::printf("\nstored: drover %.1f MiB in layers; tar+zstd %.1f MiB\n\n", mib(stored),
              mib(tarball_bytes));

  // One-file changes: small, medium and big files, chosen deterministically.
  std::vector<fs::path> picks;
  std::vector<fs::path> small, medium, big;
  for (const auto& f : generated.files) {
    std::string name = f.filename().string();
    (name[0] == 's' ? small : name[0] == 'm' ? medium : big).push_back(f);
  }
  std::mt19937_64 rng(7);
  const int changes = args["changes"].as<int>();
  for (int i = 0; i < changes; ++i) {
    auto& pool = (i % 3 == 0) ? small : (i % 3 == 1) ? medium : small;
    picks.push_back(pool[rng() % pool.size()]);
  }
  picks.push_back(big[rng() % big.size()]);

  std::vector<std::pair<std::uint64_t, bool>> configs = {{4ull << 20, true}};
  if (!args.count("no-sweep")) {
    configs = {{1ull << 20, true}, {2ull << 20, true},  {4ull << 20, true},
               {8ull << 20, true}, {16ull << 20, true}, {4ull << 20, false}};
  }
  std::printf("### Layer size: layers per artifact and bytes a one-file change adds\n\n");
  std::printf(
      "v2 differs from v1 in one file; 'new' is what the v2 push added to a store holding v1 "
      "(layers + manifest). Small/medium changes averaged over %d files; the big file is "
      "listed alone.\n\n",
      changes);
  std::printf(
      "| layer target L | zstd | layers | stored MiB | push s | small/medium change: new MiB (%% "
      "of tree) | worst small/medium | big file (MiB): new MiB "
      "|\n|---|---|---|---|---|---|---|---|\n");
  for (auto [target, compress] : configs) {
    SweepRow row = sweep(tree, work / "sweep-store", picks, target, compress);
    double sum = 0, worst = 0;
    for (std::size_t i = 0; i + 1 < row.changes.size(); ++i) {
      sum += static_cast<double>(row.changes[i].new_bytes);
      worst = std::max(worst, static_cast<double>(row.changes[i].new_bytes));
    }
    double avg = sum / static_cast<double>(row.changes.size() - 1);
    const auto& b = row.changes.back();
    std::printf(
        "| %.0f MiB | %s | %zu | %.1f | %.2f | %.2f (%.2f%%) | %.2f (%.2f%%) | %.1f: %.1f |\n",
        mib(target), compress ? "yes" : "no", row.layers, mib(row.stored), row.push_seconds,
        avg / (1 << 20), 100.0 * avg / static_cast<double>(generated.bytes), worst / (1 << 20),
        100.0 * worst / static_cast<double>(generated.bytes), mib(b.file_bytes), mib(b.new_bytes));
    std::fflush(stdout);
  }
  fs::remove_all(work / "sweep-store");
  return 0;
}

}  // namespace
}  // namespace drover::bench

int main(int argc, char** argv) {
  return drover::bench::main_impl(argc, argv);
}
