// train_positions: which position encoding extrapolates? The same small decoder-only model
// (posenc::training::Model: D = 64, 2 blocks, 4 heads, RMSNorm, GELU, causal) is trained from
// the same seeds on the same batches once per encoder, at length L, and evaluated on held-out
// sequences of length L, 2L, 4L and 8L (the measurement of Press et al. 2022, Figure 1, on
// synthetic data). Two tasks, both unsolvable without order:
//   periodic  language modelling of a noisy periodic sequence: each sequence draws a pattern
//             of P = 12 tokens (V = 16) and repeats it; every token is independently replaced
//             by a uniform one with probability 0.1. Predicting the next token needs the
//             tokens P, 2P, 3P, ... back (a majority vote over earlier periods beats one look
//             back), so a model that uses relative offsets can do it at any length, and the
//             loss falls with context. The Bayes-optimal loss (exact posterior over the
//             pattern given every earlier period) is printed as the floor.
//   copy      retrieval: random tokens (V = 16); at every position t >= 6 the target is the
//             token 6 places back. Accuracy over those positions (chance: 1/16).
// Encoders that cannot run at a length (the learned table past L_max, BERT relative past
// distance L - 1) throw posenc::error, which is caught and reported, not a crash.
//
//   train_positions            the full run (L = 64, 600 steps of 16 sequences per encoder
//                              and task, 24 held-out sequences per length); writes
//                              train_positions.csv
//   train_positions --quick    what CI runs (L = 32, 60 steps of 8 sequences, 8 held-out);
//                              exits 1 unless training reduced the held-out loss at L for
//                              every encoder and task, and says which did not
//   flags: --csv FILE, --steps N, --len L, --eval N (sequences per length),
//          --only a,b,... (encoder names), --tasks periodic,copy
// Deterministic: fixed seeds (data 1001 / 1002, held-out 2001 / 2002, weights 7, tables 11+),
// one thread (OpenMP and Eigen are set to 1), float32; the same binary gives the same table.
#include <posenc/posenc.hpp>
#include <posenc/training.hpp>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace tr = posenc::training;
using posenc::Index;
using posenc::Matrix;
using T = float;

namespace {

struct Config {
  bool quick = false;
  Index len = 64;  // L, the training length
  int steps = 600;
  int batch = 16;
  int eval_seqs = 24;  // held-out sequences per evaluation length
  double lr = 3e-3;
  Index vocab = 16;
  Index period = 12;   // periodic: P
  double noise = 0.1;  // periodic: probability that a token is replaced by a uniform one
  Index lag = 6;       // copy: k
  Index shaw_k = 16;   // Shaw's clip K
  Index t5_buckets = 32, t5_max_distance = 128;
  Index deberta_buckets = 32;
  std::string csv = "train_positions.csv";
  std::vector<std::string> only;
  std::vector<std::string> tasks = {"periodic", "copy"};
  std::vector<Index> eval_lens() const { return {len, 2 * len, 4 * len, 8 * len}; }
};

// --- Data: a portable generator (std::mt19937_64's outputs are fixed by the standard) ----------

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : g_(seed) {}
  std::int64_t below(Index n) {
    return static_cast<std::int64_t>(g_() % static_cast<std::uint64_t>(n));
  }
  double uniform() { return static_cast<double>(g_() >> 11) * (1.0 / 9007199254740992.0); }

 private:
  std::mt19937_64 g_;
};

tr::Sequence make_periodic(Index n, Rng& r, const Config& c) {
  std::vector<std::int64_t> pattern(static_cast<std::size_t>(c.period));
  for (auto& p : pattern)
    p = r.below(c.vocab);
  std::vector<std::int64_t> tokens(static_cast<std::size_t>(n));
  for (Index t = 0; t < n; ++t) {
    const bool noisy = r.uniform() < c.noise;
    const std::int64_t u = r.below(c.vocab);
    tokens[static_cast<std::size_t>(t)] =
        noisy ? u : pattern[static_cast<std::size_t>(t % c.period)];
  }
  return tr::Sequence::next_token(std::move(tokens));
}

tr::Sequence make_copy(Index n, Rng& r, const Config& c) {
  tr::Sequence s;
  s.tokens.resize(static_cast<std::size_t>(n));
  for (auto& t : s.tokens)
    t = r.below(c.vocab);
  s.targets.assign(static_cast<std::size_t>(n), tr::ignore_index);
  for (Index t = c.lag; t < n; ++t)
    s.targets[static_cast<std::size_t>(t)] = s.tokens[static_cast<std::size_t>(t - c.lag)];
  return s;
}

tr::Sequence make(const std::string& task, Index n, Rng& r, const Config& c) {
  return task == "periodic" ? make_periodic(n, r, c) : make_copy(n, r, c);
}

struct Score {
  double loss = 0, accuracy = 0;
};

/// The Bayes-optimal next-token loss and accuracy of the periodic task: the exact posterior
/// over the pattern's token at each phase given every earlier token of that phase.
Score periodic_optimum(const std::vector<tr::Sequence>& set, const Config& c) {
  const Index v = c.vocab;
  const double keep = 1.0 - c.noise + c.noise / static_cast<double>(v),
               other = c.noise / static_cast<double>(v);
  double loss = 0, correct = 0, count = 0;
  std::vector<double> post(static_cast<std::size_t>(v));
  for (const auto& s : set) {
    const Index n = static_cast<Index>(s.tokens.size());
    for (Index i = 0; i + 1 < n; ++i) {
      const Index t = i + 1;  // predict x_t from x_0 .. x_{t-1}
      std::fill(post.begin(), post.end(), 1.0);
      for (Index j = t - c.period; j >= 0; j -= c.period)
        for (Index y = 0; y < v; ++y)
          post[static_cast<std::size_t>(y)] *=
              s.tokens[static_cast<std::size_t>(j)] == y ? keep : other;
      double z = 0;
      for (double p : post)
        z += p;
      std::vector<double> pred(static_cast<std::size_t>(v));
      for (Index y = 0; y < v; ++y)
        pred[static_cast<std::size_t>(y)] =
            (post[static_cast<std::size_t>(y)] / z) * (keep - other) + other;
      const auto target = static_cast<std::size_t>(s.targets[static_cast<std::size_t>(i)]);
      loss -= std::log(pred[target]);
      correct += std::max_element(pred.begin(), pred.end()) - pred.begin() ==
                 static_cast<std::ptrdiff_t>(target);
      count += 1;
    }
  }
  return {loss / count, correct / count};
}

/// Loss (mean cross-entropy over the targets) and accuracy (argmax) of a model on a set.
template <class M>
Score evaluate(const M& model, const std::vector<tr::Sequence>& set) {
  double loss = 0, correct = 0, count = 0;
  for (const auto& s : set) {
    const Matrix<T> logits = model.logits(s.tokens);
    for (Index i = 0; i < logits.rows(); ++i) {
      const std::int64_t t = s.targets[static_cast<std::size_t>(i)];
      if (t < 0) continue;
      Index arg = 0;
      const double mx = logits.row(i).maxCoeff(&arg);
      const double lse =
          mx + std::log((logits.row(i).array().template cast<double>() - mx).exp().sum());
      loss += lse - static_cast<double>(logits(i, static_cast<Index>(t)));
      correct += arg == t;
      count += 1;
    }
  }
  return {loss / count, correct / count};
}

// --- One encoder, one task ---------------------------------------------------------------------

struct Cell {
  bool ok = false;
  Score score;
  std::string error;  // what posenc::error said when the model could not run at this length
};

struct Result {
  std::string task, encoder;
  bool trained = false;
  std::string train_error;
  double initial_loss = 0;  // held-out loss at L before training
  double final_train_loss = 0;
  double seconds = 0;
  std::vector<Cell> cells;  // one per evaluation length
};

std::string one_line(std::string s) {
  for (char& ch : s)
    if (ch == '\n' || ch == ',' || ch == '"') ch = ch == ',' ? ';' : ' ';
  return s;
}

template <class M>
Result train_and_evaluate(const std::string& task, const std::string& name, M& model,
                          const Config& c, const std::vector<std::vector<tr::Sequence>>& eval) {
  Result r;
  r.task = task;
  r.encoder = name;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    r.initial_loss = evaluate(model, eval[0]).loss;
    tr::Adam<T> adam({c.lr, 0.9, 0.999, 1e-8, /*weight_decay*/ 0.01, /*clip_norm*/ 1.0});
    Rng data(task == "periodic" ? 1001 : 1002);  // the same batches for every encoder
    const int warmup = std::max(1, c.steps / 20);
    double recent = 0;
    int recent_n = 0;
    for (int step = 0; step < c.steps; ++step) {
      // linear warm-up, then cosine decay to a tenth
      const double pr = step < warmup ? 1.0
                                      : 0.55 + 0.45 * std::cos(3.141592653589793 * (step - warmup) /
                                                               std::max(1, c.steps - warmup));
      adam.set_learning_rate(c.lr * (step < warmup ? (step + 1.0) / warmup : pr));
      std::vector<tr::Sequence> batch;
      for (int b = 0; b < c.batch; ++b)
        batch.push_back(make(task, c.len, data, c));
      const double l = model.train_step(batch, adam);
      if (!std::isfinite(l))
        throw posenc::error("the training loss is not finite at step " + std::to_string(step));
      if (step >= c.steps - std::max(1, c.steps / 10)) {
        recent += l;
        ++recent_n;
      }
    }
    r.final_train_loss = recent / std::max(1, recent_n);
    r.trained = true;
  } catch (const posenc::error& e) {
    r.train_error = one_line(e.what());
  }
  for (const auto& set : eval) {
    Cell cell;
    if (r.trained) {
      try {
        cell.score = evaluate(model, set);
        cell.ok = std::isfinite(cell.score.loss);
        if (!cell.ok) cell.error = "non-finite loss";
      } catch (const posenc::error& e) {
        cell.error = one_line(e.what());
      }
    } else {
      cell.error = "did not train";
    }
    r.cells.push_back(cell);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

Matrix<T> normal(Index rows, Index cols, std::uint64_t seed, double stddev) {
  Matrix<T> m(rows, cols);
  tr::NormalSource(seed).fill(m, stddev);
  return m;
}

tr::ModelConfig model_config(const Config& c) {
  tr::ModelConfig mc;
  mc.vocab = c.vocab;
  mc.dim = 64;
  mc.layers = 2;
  mc.heads = 4;
  mc.activation = tr::Activation::gelu;
  mc.causal = true;
  mc.seed = 7;
  return mc;
}

bool wanted(const Config& c, const std::string& name) {
  return c.only.empty() || std::find(c.only.begin(), c.only.end(), name) != c.only.end();
}

/// Every encoder on one task, in a fixed order.
std::vector<Result> run_task(const std::string& task, const Config& c) {
  std::vector<std::vector<tr::Sequence>> eval;
  Rng held_out(task == "periodic" ? 2001 : 2002);
  for (const Index n : c.eval_lens()) {
    std::vector<tr::Sequence> set;
    for (int i = 0; i < c.eval_seqs; ++i)
      set.push_back(make(task, n, held_out, c));
    eval.push_back(std::move(set));
  }
  const tr::ModelConfig mc = model_config(c);
  const Index d = mc.dim, h = mc.heads, dh = d / h, layers = mc.layers;
  std::vector<Result> out;
  const auto run = [&](const std::string& name, auto&& build) {
    if (!wanted(c, name)) return;
    std::fprintf(stderr, "  %s / %s ...", task.c_str(), name.c_str());
    auto model = build();
    out.push_back(train_and_evaluate(task, name, model, c, eval));
    std::fprintf(stderr, " %.1f s\n", out.back().seconds);
  };
  run("none", [&] { return tr::Model<posenc::NoEncoding<T>>(mc, posenc::NoEncoding<T>{}); });
  run("sinusoidal", [&] {
    return tr::Model<posenc::SinusoidalEncoding<T>>(mc, posenc::SinusoidalEncoding<T>(d));
  });
  run("learned", [&] {
    // a table of L rows (GPT-2's N(0, 0.02)): positions past L are outside it
    return tr::Model<posenc::LearnedEncoding<T>>(
        mc, posenc::LearnedEncoding<T>::normal(c.len, d, 11, 0.02));
  });
  run("rope",
      [&] { return tr::Model<posenc::RotaryEncoding<T>>(mc, posenc::RotaryEncoding<T>(dh)); });
  run("alibi",
      [&] { return tr::Model<posenc::AlibiEncoding<T>>(mc, posenc::AlibiEncoding<T>(h)); });
  run("t5", [&] {
    // causal buckets (T5's decoder), one table shared by the blocks as in T5, zeros
    using E = posenc::T5Encoding<T>;
    return tr::Model<E>(mc, E(Matrix<T>::Zero(c.t5_buckets, h), {c.t5_max_distance, false}));
  });
  run("shaw", [&] {
    using E = posenc::ShawEncoding<T>;
    std::vector<E> e;
    for (Index l = 0; l < layers; ++l)
      e.emplace_back(normal(2 * c.shaw_k + 1, dh, 12 + 2 * l, 0.02),
                     normal(2 * c.shaw_k + 1, dh, 13 + 2 * l, 0.02));
    return tr::Model<E>(mc, std::move(e));
  });
  run("transformer_xl", [&] {
    using E = posenc::TransformerXLEncoding<T>;
    std::vector<E> e;
    for (Index l = 0; l < layers; ++l)
      e.emplace_back(Matrix<T>::Zero(h, dh), Matrix<T>::Zero(h, dh),
                     normal(d, h * dh, 20 + l, std::sqrt(2.0 / (2.0 * d))));
    return tr::Model<E>(mc, std::move(e));
  });
  run("bert_relative", [&] {
    // relative_key, a table of 2L - 1 rows (max_position_embeddings = L) per block
    using E = posenc::BertRelativeEncoding<T>;
    std::vector<E> e;
    for (Index l = 0; l < layers; ++l)
      e.emplace_back(normal(2 * c.len - 1, dh, 30 + l, 0.02),
                     posenc::BertRelativeType::relative_key);
    return tr::Model<E>(mc, std::move(e));
  });
  run("deberta", [&] {
    // c2p|p2c, log buckets b = 32, m = max(L, 32), per block; scale 1/sqrt(3 Dh)
    using E = posenc::DebertaEncoding<T>;
    posenc::DebertaOptions o;
    o.position_buckets = c.deberta_buckets;
    o.max_relative_positions = std::max<Index>(c.len, 32);
    o.terms = posenc::DebertaTerms::both;
    std::vector<E> e;
    for (Index l = 0; l < layers; ++l)
      e.emplace_back(normal(2 * c.deberta_buckets, h * dh, 40 + 2 * l, 0.02),
                     normal(2 * c.deberta_buckets, h * dh, 41 + 2 * l, 0.02), h, o);
    tr::ModelConfig m2 = mc;
    m2.attention_scale = static_cast<double>(e[0].attention_scale());
    return tr::Model<E>(m2, std::move(e));
  });
  run("temperature", [&] {
    // Llama 4's query temperature on a model without other position encoding; floor_scale
    // L / 4 (Llama 4's is 8192) so that the factor changes inside and past the trained length
    posenc::AttentionTemperatureOptions o;
    o.attn_scale = 0.1;
    o.floor_scale = static_cast<double>(c.len) / 4.0;
    using E = posenc::AttentionTemperatureEncoding<T>;
    return tr::Model<E>(mc, E(o));
  });
  return out;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

void print_table(const std::vector<Result>& rs, const std::string& task, const Config& c,
                 const std::vector<Score>& optimum) {
  const bool lm = task == "periodic";
  std::printf("\n%s: %s at L = %ld (held-out %s, %d sequences per length)\n\n", task.c_str(),
              lm ? "next-token loss (nats)" : "accuracy of copying the token 6 back",
              static_cast<long>(c.len), lm ? "mean cross-entropy" : "accuracy", c.eval_seqs);
  std::printf("| encoder | loss at L before training |");
  for (const Index n : c.eval_lens())
    std::printf(" %ld |", static_cast<long>(n));
  std::printf(" train s |\n|---|---:|");
  for (std::size_t i = 0; i < c.eval_lens().size(); ++i)
    std::printf("---:|");
  std::printf("---:|\n");
  for (const auto& r : rs) {
    std::printf("| %s | %.3f |", r.encoder.c_str(), r.initial_loss);
    for (const auto& cell : r.cells) {
      if (cell.ok)
        std::printf(lm ? " %.3f |" : " %.3f |", lm ? cell.score.loss : cell.score.accuracy);
      else
        std::printf(" error |");
    }
    std::printf(" %.1f |\n", r.seconds);
  }
  if (lm && !optimum.empty()) {
    std::printf("| (Bayes-optimal) | |");
    for (const auto& o : optimum)
      std::printf(" %.3f |", o.loss);
    std::printf(" |\n");
  }
  if (!lm) {
    std::printf("| (chance) | |");
    for (std::size_t i = 0; i < c.eval_lens().size(); ++i)
      std::printf(" %.3f |", 1.0 / static_cast<double>(c.vocab));
    std::printf(" |\n");
  }
  for (const auto& r : rs) {
    if (!r.trained)
      std::printf("%s: did not train: %s\n", r.encoder.c_str(), r.train_error.c_str());
    for (std::size_t i = 0; i < r.cells.size(); ++i)
      if (r.trained && !r.cells[i].ok)
        std::printf("%s at %ld: %s\n", r.encoder.c_str(), static_cast<long>(c.eval_lens()[i]),
                    r.cells[i].error.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  bool steps_set = false, len_set = false, csv_set = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "train_positions: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--quick")
      c.quick = true;
    else if (a == "--csv")
      c.csv = value(), csv_set = true;
    else if (a == "--steps")
      c.steps = std::atoi(value().c_str()), steps_set = true;
    else if (a == "--len")
      c.len = std::atol(value().c_str()), len_set = true;
    else if (a == "--eval")
      c.eval_seqs = std::atoi(value().c_str());
    else if (a == "--only")
      c.only = split(value());
    else if (a == "--tasks")
      c.tasks = split(value());
    else {
      std::fprintf(stderr,
                   "usage: train_positions [--quick] [--csv FILE] [--steps N] [--len L] "
                   "[--eval N] [--only enc,...] [--tasks periodic,copy]\n");
      return 2;
    }
  }
  if (c.quick) {
    if (!len_set) c.len = 32;
    if (!steps_set) c.steps = 60;
    c.batch = 8;
    c.eval_seqs = std::min(c.eval_seqs, 8);
    if (!csv_set) c.csv.clear();
  }
  if (c.len <= c.period || c.steps < 1 || c.eval_seqs < 1) {
    std::fprintf(stderr, "train_positions: need L >= %ld, steps >= 1, eval >= 1\n",
                 static_cast<long>(c.period + 1));
    return 2;
  }
#ifdef _OPENMP
  omp_set_num_threads(1);
#endif
  Eigen::setNbThreads(1);

  std::printf(
      "train_positions%s: D = 64, 2 blocks, 4 heads, RMSNorm, GELU, causal; V = %ld; "
      "L = %ld, %d steps of %d sequences, AdamW lr %.0e (warm-up, cosine to 1/10), "
      "clip 1; float32, 1 thread\n",
      c.quick ? " --quick" : "", static_cast<long>(c.vocab), static_cast<long>(c.len), c.steps,
      c.batch, c.lr);
  const auto start = std::chrono::steady_clock::now();
  std::vector<Result> all;
  std::vector<std::string> failures;
  std::ofstream csv;
  if (!c.csv.empty()) {
    csv.open(c.csv);
    if (!csv) {
      std::fprintf(stderr, "train_positions: cannot write %s\n", c.csv.c_str());
      return 2;
    }
    csv << "task,encoder,train_len,eval_len,loss,accuracy,status,initial_loss,train_seconds\n";
  }
  for (const auto& task : c.tasks) {
    if (task != "periodic" && task != "copy") {
      std::fprintf(stderr, "train_positions: unknown task %s\n", task.c_str());
      return 2;
    }
    const std::vector<Result> rs = run_task(task, c);
    std::vector<Score> optimum;
    if (task == "periodic") {
      Rng held_out(2001);  // the same held-out sets as run_task's
      for (const Index n : c.eval_lens()) {
        std::vector<tr::Sequence> set;
        for (int i = 0; i < c.eval_seqs; ++i)
          set.push_back(make(task, n, held_out, c));
        optimum.push_back(periodic_optimum(set, c));
      }
    }
    print_table(rs, task, c, optimum);
    const auto lens = c.eval_lens();
    for (const auto& r : rs) {
      for (std::size_t i = 0; i < lens.size(); ++i) {
        const Cell& cell = r.cells[i];
        if (csv.is_open()) {
          csv << task << ',' << r.encoder << ',' << c.len << ',' << lens[i] << ',';
          if (cell.ok)
            csv << cell.score.loss << ',' << cell.score.accuracy << ",ok,";
          else
            csv << ",,error: " << cell.error << ',';
          csv << r.initial_loss << ',' << r.seconds << '\n';
        }
      }
      if (!r.trained)
        failures.push_back(task + "/" + r.encoder + " did not train: " + r.train_error);
      else if (!r.cells[0].ok || !(r.cells[0].score.loss < r.initial_loss))
        failures.push_back(task + "/" + r.encoder + ": held-out loss at L " +
                           std::to_string(r.initial_loss) + " -> " +
                           (r.cells[0].ok ? std::to_string(r.cells[0].score.loss) : "error"));
    }
    if (csv.is_open() && task == "periodic")
      for (std::size_t i = 0; i < lens.size(); ++i)
        csv << task << ",optimal," << c.len << ',' << lens[i] << ',' << optimum[i].loss << ','
            << optimum[i].accuracy << ",bayes,,\n";
    all.insert(all.end(), rs.begin(), rs.end());
  }
  const double total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("\ntotal %.1f s%s%s\n", total, c.csv.empty() ? "" : "; table written to ",
              c.csv.c_str());
  if (!failures.empty()) {
    std::printf("FAILED: training did not reduce the held-out loss at L for:\n");
    for (const auto& f : failures)
      std::printf("  %s\n", f.c_str());
    return 1;
  }
  std::printf("training reduced the held-out loss at L for every encoder and task (%zu runs)\n",
              all.size());
  return 0;
}
