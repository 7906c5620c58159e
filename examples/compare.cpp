// compare: each encoder's measured properties side by side, the measured version of the usual
// "which positional encoding should I choose" table (also `posenc compare`, which takes the
// sizes as flags). Every number below is measured on seeded encoders and inputs, not quoted:
//   parameters            the trained scalars the encoder holds for these sizes;
//   relative only         whether the attention logits stay the same when every position
//                         shifts by s (the largest change, relative to the largest logit);
//   past L                attention on tokens around 2L and 8L, L being the learned table's
//                         length: the error it throws, or whether the outputs are finite;
//   distances told apart  the largest distance at which a key's logit still differs from the
//                         next closer key's (same token everywhere, so only position counts);
//   ns/token              the encoder's own work and a whole attention layer, per token.
#include <posenc/compare.hpp>

#include <cstdio>

int main() {
  using namespace posenc::compare;
  Config c;  // D = 64, H = 4, L = 512, T5 32 buckets / 128, Shaw K = 16
  c.time_len = 256;
  c.time_budget = 0.03;
  const std::vector<Row> rows = measure<double>(c);
  std::printf("%s\n", markdown(rows, c, "float64").c_str());
  std::printf(
      "Reading it: RoPE, ALiBi, T5, Shaw, Transformer-XL, BERT relative and DeBERTa see only\n"
      "relative distance; the sinusoidal and learned encodings are absolute. The learned table\n"
      "stops at L and BERT relative's at distance L - 1; the others run on past it, but T5, Shaw\n"
      "and DeBERTa stop telling distances apart at their last bucket / K / log bucket.\n");
  return 0;
}
