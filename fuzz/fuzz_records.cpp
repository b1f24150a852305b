// libFuzzer target: the records recipes read back from znodes and files
// (./run fuzz): a registry instance record, a leader candidate's data, and a
// config fallback file. Properties: nothing crashes; a record that decodes
// encodes and decodes again to the same fields.
#include <zkrecipes/config.hpp>
#include <zkrecipes/leader_latch.hpp>
#include <zkrecipes/service_registry.hpp>

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace zkr = zkrecipes;

namespace {
bool same(const zkr::service_instance& a, const zkr::service_instance& b) {
  return a.service == b.service && a.id == b.id && a.address == b.address && a.ports == b.ports &&
         a.payload == b.payload;
}

/// One file per fuzzing process, rewritten for each input, removed at exit
/// (./run fuzz also points TMPDIR at a folder it removes).
const std::string& scratch_file() {
  // Never destroyed: the exit handler below still needs it.
  static const std::string* f = [] {
    auto* p = new std::string(
        (std::filesystem::temp_directory_path() / ("zkrecipes-fuzz-config-" + std::to_string(::getpid()))).string());
    std::atexit([] { std::remove(scratch_file().c_str()); });
    return p;
  }();
  return *f;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto r = zkr::detail::decode_instance(in)) {
    auto e = zkr::detail::encode_instance(r.value());
    if (!e) std::abort(); // what decodes must encode
    auto again = zkr::detail::decode_instance(e.value());
    if (!again || !same(again.value(), r.value())) std::abort();
  }
  auto p = zkr::detail::decode_candidate(in, "n", false);
  if (zkr::detail::decode_candidate(zkr::detail::encode_candidate(p.id, p.payload), "n", false).id != p.id) std::abort();

  // The fallback file: whatever is in it, reading gives a value or an error.
  if (std::FILE* f = std::fopen(scratch_file().c_str(), "wb")) {
    if (size) std::fwrite(data, 1, size, f);
    std::fclose(f);
    (void)zkr::detail::read_config_file(scratch_file(), "/app/config");
  }
  return 0;
}
