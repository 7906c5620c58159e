// posenc: the command-line program. Applies, inspects, plots and compares positional
// encodings on NumPy .npy arrays (docs/cli.md).
#include "run.hpp"

int main(int argc, char** argv) {
  return posenc_cli::run(argc, argv);
}
