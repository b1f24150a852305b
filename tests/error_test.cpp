#include <zkrecipes/error.hpp>

#include <doctest/doctest.h>

#include <system_error>

using namespace zkrecipes;

namespace {
result<int> fails() { return make_error(zk_errc::no_node, "get", "/app/cfg"); }
result<int> forwards() {
  BOOST_OUTCOME_TRY(v, fails());
  return v + 1;
}
} // namespace

TEST_SUITE("error") {
  TEST_CASE("every ZooKeeper return code has a message of its own") {
    for (int c : {-1, -2, -3, -4, -5, -6, -7, -8, -9, -13, -14, -15, -100, -101, -102, -103, -108,
                  -110, -111, -112, -113, -114, -115, -116, -117, -118, -119, -120, -121, -123,
                  -124, -127}) {
      auto m = zk_category().message(c);
      CHECK_MESSAGE(m.find("zookeeper error") == std::string::npos, c);
    }
    CHECK(zk_category().message(-9999) == "zookeeper error -9999");
    CHECK(std::string(zk_category().name()) == "zookeeper");
  }

  TEST_CASE("errors name the operation and the path") {
    auto r = fails();
    REQUIRE(!r);
    CHECK(r.error().message() == "get /app/cfg: no node");
    CHECK(r.error() == zk_errc::no_node);
    CHECK(r.error() != zk_errc::node_exists);
  }

  TEST_CASE("codes compare equal to std::errc where one fits") {
    CHECK(error(zk_errc::no_node) == std::errc::no_such_file_or_directory);
    CHECK(error(zk_errc::node_exists) == std::errc::file_exists);
    CHECK(error(zk_errc::connection_loss) == std::errc::connection_aborted);
    CHECK(error(errc::timed_out) == std::errc::timed_out);
    CHECK(error(errc::closed) == std::errc::operation_canceled);
    CHECK(error(errc::invalid_path) == std::errc::invalid_argument);
    CHECK(error(errc::payload_too_large) == std::errc::message_size);
    CHECK_FALSE(error(zk_errc::bad_version) == std::errc::timed_out);
  }

  TEST_CASE("TRY forwards the failure with its context") {
    auto r = forwards();
    REQUIRE(!r);
    CHECK(r.error().message() == "get /app/cfg: no node");
  }

  TEST_CASE("value() on a failure throws system_error naming operation and path") {
    try {
      (void)fails().value();
      FAIL("value() did not throw");
    } catch (const std::system_error& e) {
      CHECK(std::string(e.what()).find("get /app/cfg") != std::string::npos);
      CHECK(e.code() == make_error_code(zk_errc::no_node));
    }
  }

  TEST_CASE("classification predicates") {
    CHECK(is_connection_loss(error(zk_errc::connection_loss)));
    CHECK(is_retryable(error(zk_errc::connection_loss)));
    CHECK(is_retryable(error(zk_errc::operation_timeout)));
    CHECK_FALSE(is_retryable(error(zk_errc::node_exists)));
    CHECK_FALSE(is_retryable(error(zk_errc::session_expired)));
    CHECK(is_session_expired(error(zk_errc::session_expired)));
  }
}
