// libFuzzer target: every codec's decode, and the trace envelope queues put
// around items (./run fuzz). Properties: decode never crashes or throws; what
// decodes, encodes and decodes again to the same value.
#include <zkrecipes/codec.hpp>
#include <zkrecipes/detail/trace_envelope.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace zkr = zkrecipes;

template <class C> void round_trip(std::string_view in) {
  auto v = C::decode(in);
  if (!v) return;
  auto e = C::encode(v.value());
  if (!e) std::abort(); // a decoded value must encode
  auto again = C::decode(e.value());
  if (!again || !(again.value() == v.value())) std::abort();
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  round_trip<zkr::string_codec>(in);
  round_trip<zkr::bytes_codec>(in);
#ifdef ZKRECIPES_HAS_JSON
  round_trip<zkr::json_codec<nlohmann::json>>(in);
#endif
  if (auto u = zkr::detail::unwrap_trace(in)) {
    // Wrapping what was unwrapped gives an envelope that unwraps the same.
    auto w = zkr::detail::wrap_trace(u.value().payload, u.value().trace_id);
    auto again = zkr::detail::unwrap_trace(w);
    if (!again || again.value().payload != u.value().payload || again.value().trace_id != u.value().trace_id)
      std::abort();
  }
  return 0;
}
