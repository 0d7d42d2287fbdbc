// Little helpers for the chunk codec: LEB128 varints, zigzag, and a bounds-checked reader.
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
inline int64_t UnZigZag(uint64_t v) {
  return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
}

inline void PutVarint(std::string* dst, uint64_t v) {
  char buf[10];
  size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  dst->append(buf, n);
}
inline void PutZigZag(std::string* dst, int64_t v) { PutVarint(dst, ZigZag(v)); }
inline void PutByte(std::string* dst, uint8_t b) { dst->push_back(static_cast<char>(b)); }

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
