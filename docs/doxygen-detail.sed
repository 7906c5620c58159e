# Doxygen's INPUT_FILTER for the public headers (docs/Doxyfile.in): hides every namespace detail
# block (implementation, not reference) inside a conditional section, on the same lines so that
# warnings keep their line numbers. clang-format closes each block with "}  // namespace detail".
s|^namespace detail {|/** @cond POSENC_DETAIL */ namespace detail {|
s|^}  // namespace detail$|}  /** @endcond */|
