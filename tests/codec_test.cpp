#include <zkrecipes/codec.hpp>

#include <doctest/doctest.h>

using namespace zkrecipes;

TEST_SUITE("codec") {
  TEST_CASE("strings and bytes round-trip unchanged, including NUL bytes") {
    std::string s("a\0b\xff", 4);
    CHECK(string_codec::decode(string_codec::encode(s).value()).value() == s);
    std::vector<std::byte> b{std::byte{0}, std::byte{255}, std::byte{7}};
    CHECK(bytes_codec::decode(bytes_codec::encode(b).value()).value() == b);
    CHECK(bytes_codec::decode("").value().empty());
  }

  TEST_CASE("codec<T> names the default codec") {
    CHECK(std::is_same_v<codec_t<std::string>, string_codec>);
    CHECK(std::is_same_v<codec_t<std::vector<std::byte>>, bytes_codec>);
  }

#ifdef ZKRECIPES_HAS_JSON
  struct point {
    int x = 0, y = 0;
    NLOHMANN_DEFINE_TYPE_INTRUSIVE(point, x, y)
  };

  TEST_CASE("json round-trips a user type") {
    auto e = json_codec<point>::encode(point{3, -4});
    REQUIRE(e);
    auto d = json_codec<point>::decode(e.value());
    REQUIRE(d);
    CHECK(d.value().x == 3);
    CHECK(d.value().y == -4);
  }

  TEST_CASE("bad json is a decode_failed error, never a crash") {
    for (const char* bad : {"", "{", "not json", "{\"x\":\"str\",\"y\":1}", "[1,2]", "\xff\xfe"}) {
      auto d = json_codec<point>::decode(bad);
      CHECK_MESSAGE(!d, bad);
      if (!d) CHECK(d.error() == errc::decode_failed);
    }
  }
#endif
}
