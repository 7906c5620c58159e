// posenc compare: each encoder's measured properties side by side as a Markdown table
// (docs/compare.md; the measurements are compare.hpp's, shared with examples/compare.cpp).
//
//   posenc compare [--dim D] [--heads H] [--max-len L] [--num-buckets B] [--max-distance M]
//                  [--max-relative K] [--tokens N] [--shifts s1,s2,...] [--time-len N]
//                  [--time-budget S] [--threads T] [--encoders e1,e2,...] [--seed S]
//                  [--dtype f32|f64] [-o table.md]
#include "compare_command.hpp"

#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <posenc/compare.hpp>
#include "cli_common.hpp"

namespace posenc_cli {

namespace compare = posenc::compare;

void add_compare_command(CLI::App& app) {
  struct Args {
    compare::Config c;
    std::vector<std::string> encoders = compare::all_keys();
    Dtype dtype = Dtype::f64;
    std::string out;
    std::int64_t dim = 64, heads = 4, max_len = 512, num_buckets = 32, max_distance = 128,
                 max_relative = 16, tokens = 32, time_len = 256, seed = 1, threads = 1;
    std::vector<std::int64_t> shifts{1, 3, 17, 100, 480, 100000};
    double time_budget = 0.05;
    CLI::Option* o_out = nullptr;
  };
  auto a = std::make_shared<Args>();
  auto* sub = app.add_subcommand(
      "compare",
      "Measure every encoder side by side and print a Markdown table: parameter count, whether "
      "scores depend only on relative distance (largest logit change when all positions shift), "
      "behaviour past the trained length L, the distances it tells apart, cost per token "
      "(docs/compare.md)");
  sub->add_option("--dim", a->dim, "Model width D")->capture_default_str();
  sub->add_option("--heads", a->heads, "Heads H (D/H even)")->capture_default_str();
  sub->add_option("--max-len", a->max_len,
                  "L: the learned table's rows, taken as the trained length of all")
      ->capture_default_str();
  sub->add_option("--num-buckets", a->num_buckets, "T5 buckets")->capture_default_str();
  sub->add_option("--max-distance", a->max_distance, "T5 max_distance")->capture_default_str();
  sub->add_option("--max-relative", a->max_relative, "Shaw's K (tables [2K+1, Dh])")
      ->capture_default_str();
  sub->add_option("--tokens", a->tokens, "N random tokens for the shift and past-L measurements")
      ->capture_default_str();
  sub->add_option("--shifts", a->shifts,
                  "Shifts s, comma-separated (the learned table uses those with s + N <= L)")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--time-len", a->time_len, "N for the cost per token")->capture_default_str();
  sub->add_option("--time-budget", a->time_budget,
                  "Seconds spent timing each call (at least one call)")
      ->check(finite())
      ->capture_default_str();
  sub->add_option("--threads", a->threads, "OpenMP threads while measuring (0: the default)")
      ->capture_default_str();
  sub->add_option("--encoders", a->encoders, "Encoders to measure, comma-separated")
      ->delimiter(',')
      ->check(one_of(compare::all_keys()))
      ->capture_default_str();
  sub->add_option("--seed", a->seed, "Seed of the inputs and of the trained parameters")
      ->capture_default_str();
  add_enum_option(sub, "--dtype", a->dtype, "Scalar type of the measurements");
  a->o_out = sub->add_option("-o,--output", a->out,
                             "Also write the table to this file (docs/cli.md, output files)");
  sub->callback([a] {
    const auto positive = [](const std::string& flag, std::int64_t v, std::int64_t hi) {
      if (v < 1 || v > hi)
        throw CliError(flag + ": " + std::to_string(v) + " must be in [1, " + std::to_string(hi) +
                       "]");
    };
    positive("--dim", a->dim, 8192);
    positive("--heads", a->heads, 1024);
    if (a->dim % a->heads != 0 || (a->dim / a->heads) % 2 != 0)
      throw CliError("--heads: H = " + std::to_string(a->heads) +
                     " must divide D = " + std::to_string(a->dim) + " into an even head dimension");
    positive("--max-len", a->max_len, 1 << 16);
    positive("--num-buckets", a->num_buckets, 4096);
    positive("--max-distance", a->max_distance, 1 << 20);
    positive("--max-relative", a->max_relative, 4096);
    positive("--tokens", a->tokens, a->max_len);
    positive("--time-len", a->time_len, 16384);
    if (a->threads < 0 || a->threads > 1024)
      throw CliError("--threads: " + std::to_string(a->threads) + " must be in [0, 1024]");
    if (!(a->time_budget >= 0 && a->time_budget <= 60))
      throw CliError("--time-budget: must be in [0, 60] seconds");
    if (a->shifts.empty()) throw CliError("--shifts: needs at least one shift");
    for (auto s : a->shifts)
      if (s < 1 || s > (std::int64_t{1} << 40))
        throw CliError("--shifts: " + std::to_string(s) + " must be in [1, 2^40]");
    if (a->seed < 0) throw CliError("--seed: must be >= 0");
    if (a->encoders.empty()) throw CliError("--encoders: needs at least one encoder");
    if (a->o_out->count()) resolve_output(a->out);
    compare::Config& c = a->c;
    c.dim = a->dim;
    c.heads = a->heads;
    c.max_len = a->max_len;
    c.num_buckets = a->num_buckets;
    c.max_distance = a->max_distance;
    c.max_relative = a->max_relative;
    c.tokens = a->tokens;
    c.shifts = a->shifts;
    c.time_len = a->time_len;
    c.time_budget = a->time_budget;
    c.threads = static_cast<int>(a->threads);
    c.seed = static_cast<std::uint64_t>(a->seed);
    if (a->dtype == Dtype::f16 || a->dtype == Dtype::bf16)
      throw CliError(std::string("--dtype: compare measures in f32 or f64, not ") +
                     std::string(posenc::name_of(a->dtype)));
    std::string table;
    try {
      if (a->dtype == Dtype::f32)
        table = compare::markdown(compare::measure<float>(c, a->encoders), c, "float32");
      else
        table = compare::markdown(compare::measure<double>(c, a->encoders), c, "float64");
    } catch (const posenc::error& e) {
      throw CliError(std::string("compare: ") + e.what());
    }
    if (!a->out.empty()) {
      write_output(a->out, [&](OutputFile& f) { f.write(table.data(), table.size()); });
    }
    std::cout << table << std::flush;
  });
}

}  // namespace posenc_cli
