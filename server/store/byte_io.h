// Little helpers for the chunk codec: LEB128 varints, zigzag, an unchecked writer into a
// buffer sized for the worst case, and a bounds-checked reader.
// Internal to server/store. Header-only value types; thread-compatible.
#ifndef PUMPTWIN_SERVER_STORE_BYTE_IO_H_
#define PUMPTWIN_SERVER_STORE_BYTE_IO_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/string_view.h"

namespace pumptwin::store::byte_io {

inline uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1)); }

inline constexpr size_t kMaxVarintBytes = 10;

// Writes into a buffer the caller sized for the worst case (no bounds checks: the encoder
// computes its bound up front, which keeps the per-byte path to a store and an increment).
class Writer {
 public:
  explicit Writer(uint8_t* p) : begin_(p), p_(p) {}
  void Byte(uint8_t b) { *p_++ = b; }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      *p_++ = static_cast<uint8_t>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    *p_++ = static_cast<uint8_t>(v);
  }
  void ZigZag(int64_t v) { Varint(byte_io::ZigZag(v)); }
  size_t size() const { return static_cast<size_t>(p_ - begin_); }
  const uint8_t* data() const { return begin_; }

 private:
  uint8_t* const begin_;
  uint8_t* p_;
};

// Reads from a byte range; every call fails (returns false) instead of reading past the end,
// and once failed stays failed.
class Reader {
 public:
  explicit Reader(absl::string_view bytes)
      : p_(reinterpret_cast<const uint8_t*>(bytes.data())), end_(p_ + bytes.size()) {}

  bool Byte(uint8_t* out) {
    if (p_ == end_) return false;
    *out = *p_++;
    return true;
  }
  bool Varint(uint64_t* out) {
    uint64_t v = 0;
    for (int shift = 0; shift <= 63; shift += 7) {
      if (p_ == end_) return false;
      const uint8_t b = *p_++;
      if (shift == 63 && b > 1) return false;  // overlong: more than 64 bits
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        *out = v;
        return true;
      }
    }
    return false;
  }
  bool ZigZag(int64_t* out) {
    uint64_t v;
    if (!Varint(&v)) return false;
    *out = UnZigZag(v);
    return true;
  }
  bool Bytes(size_t n, const uint8_t** out) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    *out = p_;
    p_ += n;
    return true;
  }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

}  // namespace pumptwin::store::byte_io

#endif  // PUMPTWIN_SERVER_STORE_BYTE_IO_H_
