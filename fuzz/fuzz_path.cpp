// libFuzzer target: path validation and the path helpers (./run fuzz).
// Properties: nothing crashes; a valid path splits into parent and name that
// join back to it; a valid name is a valid path under any valid parent.
#include <zkrecipes/path.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace zkr = zkrecipes;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)zkr::sequence_of(in);
  if (zkr::validate_path(in)) {
    if (in != "/") {
      const std::string_view p = zkr::parent(in), n = zkr::name(in);
      if (!zkr::validate_path(p) || !zkr::validate_name(n)) std::abort(); // parts of a valid path are valid
      if (zkr::join(p, n) != in) std::abort();                           // and join back to it
    }
  }
  if (zkr::validate_name(in)) {
    if (!zkr::validate_path(zkr::join("/", in)) || !zkr::validate_path(zkr::join("/a/b", in))) std::abort();
  }
  return 0;
}
