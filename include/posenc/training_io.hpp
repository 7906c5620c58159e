// posenc::training: saving and loading every trained tensor of a Model (the embedding, each
// block's weights and norms, the read-out, each encoder object's tables) as one .npy file per
// tensor in a directory, named after the tensor: embedding.npy, layer0.wq.npy, ...,
// readout_bias.npy, encoder.table.npy (one shared encoder) or layer1.encoder.table.npy (one
// per layer). Vectors are 1-D arrays, matrices 2-D [rows, cols] in C order; the dtype is the
// model's scalar ('<f4' for float, '<f8' for double). load reads '<f4' and '<f8' alike.
#pragma once

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "detail/npy_io.hpp"
#include "training.hpp"

POSENC_NAMESPACE_BEGIN
namespace training {

/// Writes every tensor of model.parameters() to directory dir (created if missing; existing
/// files of the same names are replaced). Returns the files written.
template <class E>
std::vector<std::string> save(const Model<E>& model, const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  posenc::detail::require(!ec, "training::save: cannot create the directory ", dir, " (",
                          ec.message(), ")");
  posenc::detail::require(fs::is_directory(dir), "training::save: ", dir, " is not a directory");
  // parameters() is the non-const view; nothing is written through it here.
  auto& m = const_cast<Model<E>&>(model);
  std::vector<std::string> files;
  for (const auto& t : m.parameters().tensors()) {
    const std::string file = (fs::path(dir) / (t.name + ".npy")).string();
    const std::vector<std::int64_t> shape =
        t.is_vector ? std::vector<std::int64_t>{t.rows} : std::vector<std::int64_t>{t.rows, t.cols};
    posenc::detail::npy::write(file, shape, t.data);
    files.push_back(file);
  }
  return files;
}

/// Reads every tensor of model.parameters() from directory dir (written by save, or by
/// numpy.save with the same names and shapes). Every file is read and checked before any
/// tensor is changed: on an error the model is left as it was.
template <class E>
void load(Model<E>& model, const std::string& dir) {
  namespace fs = std::filesystem;
  using T = typename Model<E>::T;
  posenc::detail::require(fs::is_directory(dir), "training::load: ", dir, " is not a directory");
  const auto params = model.parameters();
  std::vector<posenc::detail::npy::Array> arrays;
  for (const auto& t : params.tensors()) {
    const std::string file = (fs::path(dir) / (t.name + ".npy")).string();
    posenc::detail::require(fs::is_regular_file(file), "training::load: ", file,
                            " is missing (the model's tensor '", t.name, "')");
    auto a = posenc::detail::npy::read(file);
    const std::vector<std::int64_t> want =
        t.is_vector ? std::vector<std::int64_t>{t.rows} : std::vector<std::int64_t>{t.rows, t.cols};
    posenc::detail::require(a.shape == want, "training::load: ", file, " has shape ",
                            posenc::detail::npy::shape_repr(a.shape), ", the model's '", t.name,
                            "' is ", posenc::detail::npy::shape_repr(want));
    arrays.push_back(std::move(a));
  }
  for (std::size_t i = 0; i < arrays.size(); ++i)
    for (std::size_t k = 0; k < arrays[i].values.size(); ++k)
      params[i].data[k] = static_cast<T>(arrays[i].values[k]);
}

}  // namespace training
POSENC_NAMESPACE_END
