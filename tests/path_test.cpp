#include <zkrecipes/path.hpp>

#include <doctest/doctest.h>

using namespace zkrecipes;

TEST_SUITE("path") {
  TEST_CASE("valid paths pass") {
    for (const char* p : {"/", "/a", "/a/b", "/zookeeper", "/a.b/c..d/-_x", "/\xc3\xa9t\xc3\xa9"})
      CHECK_MESSAGE(validate_path(p).has_value(), p);
  }

  TEST_CASE("invalid paths are refused with the reason") {
    struct c {
      const char* path;
      const char* why;
    };
    for (auto [p, why] : {c{"", "empty"}, c{"a/b", "start with '/'"}, c{"/a/", "end with '/'"},
                          c{"/a//b", "empty node name"}, c{"/a/./b", "relative"},
                          c{"/a/..", "relative"}, c{"/a\x01", "control"},
                          c{"/a\xc2\x85", "control"}, c{"/\xee\x80\x80", "private-use"}}) {
      auto r = validate_path(p, "create");
      REQUIRE_MESSAGE(!r, p);
      CHECK(r.error() == errc::invalid_path);
      CHECK_MESSAGE(r.error().message().find(why) != std::string::npos, r.error().message());
      CHECK(r.error().message().rfind("create ", 0) == 0);
    }
    std::string with_nul("/a\0b", 4);
    CHECK(!validate_path(with_nul));
  }

  TEST_CASE("node names") {
    CHECK(validate_name("lock-").has_value());
    CHECK(!validate_name("a/b"));
    CHECK(!validate_name(""));
    CHECK(!validate_name(".."));
  }

  TEST_CASE("join, parent and name") {
    CHECK(join("/", "a") == "/a");
    CHECK(join("/a", "b") == "/a/b");
    CHECK(parent("/a/b/c") == "/a/b");
    CHECK(parent("/a") == "/");
    CHECK(parent("/") == "/");
    CHECK(name("/a/b/c") == "c");
    CHECK(name("/") == "");
  }

  TEST_CASE("sequence suffixes are read as numbers") {
    CHECK(sequence_of("lock-0000000042") == 42);
    CHECK(sequence_of("/q/item-0000000000") == 0);
    CHECK(sequence_of("x2147483647") == 2147483647);
    // "0000000010" sorts after "0000000009" as text too, but 10 digits with
    // different prefixes do not: compare parsed numbers.
    CHECK(*sequence_of("b-0000000009") < *sequence_of("a-0000000010"));
    CHECK_FALSE(sequence_of("lock-").has_value());
    CHECK_FALSE(sequence_of("lock-00000000x1").has_value());
    CHECK_FALSE(sequence_of("123").has_value());
  }

  TEST_CASE("a wrapped counter reads as negative") {
    CHECK(sequence_of("n-2147483648") == -2147483648LL);
    CHECK(sequence_of("n-000000001") == -1);
  }
}
