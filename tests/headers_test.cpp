#include "compiled_headers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

int zkrecipes_umbrella_a();
int zkrecipes_umbrella_b();

namespace fs = std::filesystem;

TEST_SUITE("headers") {
  TEST_CASE("every public header has a translation unit that includes only it") {
    std::set<std::string> on_disk, compiled(std::begin(zkrecipes_test::compiled_headers),
                                            std::end(zkrecipes_test::compiled_headers));
    fs::path root = zkrecipes_test::source_include_dir;
    for (auto& e : fs::recursive_directory_iterator(root / "zkrecipes")) {
      auto rel = fs::relative(e.path(), root).generic_string();
      if (e.path().extension() == ".hpp" && rel.find("/detail/") == std::string::npos)
        on_disk.insert(rel);
    }
    CHECK(on_disk.size() >= 10);
    // A header added without re-running meson setup shows up here.
    CHECK(on_disk == compiled);
  }

  TEST_CASE("the umbrella header lists every public header outside testing/ and impl/") {
    fs::path root = zkrecipes_test::source_include_dir;
    std::ifstream in(root / "zkrecipes" / "zkrecipes.hpp");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    for (const char* h : zkrecipes_test::compiled_headers) {
      std::string s = h;
      // impl/src.hpp is the one source of ZKRECIPES_SEPARATE_COMPILATION, not an API.
      if (s == "zkrecipes/zkrecipes.hpp" || s.rfind("zkrecipes/testing/", 0) == 0 ||
          s.rfind("zkrecipes/impl/", 0) == 0)
        continue;
      CHECK_MESSAGE(text.find("\"" + s + "\"") != std::string::npos, s);
    }
  }

  TEST_CASE("two translation units including everything link together") {
    CHECK(zkrecipes_umbrella_a() == zkrecipes_umbrella_b());
  }
}
