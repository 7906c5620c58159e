// posenc internals: an uninitialised buffer for large, long-lived arrays (the KV cache's keys
// and values). From 2 MiB on it is 2 MiB aligned and, on Linux, advised for transparent huge
// pages (madvise MADV_HUGEPAGE; where the kernel offers them only on request, as with
// "madvise" in /sys/kernel/mm/transparent_hugepage/enabled): a decoding step streams the
// whole cache, and with 4 KiB pages a cache row of H_kv Dh floats is a page or more, so every
// row costs a TLB miss. Smaller buffers are 64-byte aligned.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "../types.hpp"

POSENC_NAMESPACE_BEGIN
namespace detail {

template <class T>
class LargeBuffer {
 public:
  static constexpr std::size_t huge_page = std::size_t(2) << 20;

  LargeBuffer() = default;
  /// n elements (uninitialised); an error naming `what` when they cannot be allocated.
  template <class... Names>
  LargeBuffer(std::int64_t n, const Names&... what) {
    require(n >= 0 && n <= max_elements, what..., ": ", n, " elements (at most 2^36)");
    if (n == 0) return;
    const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(T);
    const std::size_t align = bytes >= huge_page ? huge_page : 64;
    const std::size_t rounded = (bytes + align - 1) / align * align;
    void* p = nullptr;
#if defined(_WIN32)
    p = _aligned_malloc(rounded, align);
#else
    if (posix_memalign(&p, align, rounded) != 0) p = nullptr;
#endif
    if (!p) fail(what..., ": cannot allocate ", n, " elements (", bytes, " bytes): out of memory");
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align == huge_page) (void)madvise(p, rounded, MADV_HUGEPAGE);  // advice: may be refused
#endif
    data_ = static_cast<T*>(p);
    size_ = static_cast<std::size_t>(n);
  }
  LargeBuffer(const LargeBuffer&) = delete;
  LargeBuffer& operator=(const LargeBuffer&) = delete;
  LargeBuffer(LargeBuffer&& o) noexcept : data_(o.data_), size_(o.size_) {
    o.data_ = nullptr;
    o.size_ = 0;
  }
  LargeBuffer& operator=(LargeBuffer&& o) noexcept {
    swap(o);
    return *this;
  }
  ~LargeBuffer() {
    release();
  }

  void swap(LargeBuffer& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
  }
  T* data() {
    return data_;
  }
  const T* data() const {
    return data_;
  }
  std::size_t size() const {
    return size_;
  }

 private:
  void release() {
#if defined(_WIN32)
    _aligned_free(data_);
#else
    std::free(data_);
#endif
    data_ = nullptr;
    size_ = 0;
  }
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace detail
POSENC_NAMESPACE_END
