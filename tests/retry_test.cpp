#include <zkrecipes/retry.hpp>

#include <doctest/doctest.h>

#include <random>
#include <set>

using namespace zkrecipes;
using namespace std::chrono_literals;

TEST_SUITE("retry") {
  TEST_CASE("delays grow exponentially, stay within bounds and are jittered") {
    retry_policy p{10, 100ms, 1000ms};
    std::mt19937_64 rng(7);
    for (int attempt = 0; attempt < 10; ++attempt) {
      auto cap = std::min<long>(100L << attempt, 1000L);
      for (int i = 0; i < 50; ++i) {
        auto d = p.delay(attempt, rng).count();
        CHECK(d >= cap / 2);
        CHECK(d <= cap);
      }
    }
    std::set<long> seen;
    for (int i = 0; i < 50; ++i) seen.insert(p.delay(3, rng).count());
    CHECK(seen.size() > 10);
  }

  TEST_CASE("none() never waits and never retries") {
    auto p = retry_policy::none();
    std::mt19937_64 rng(1);
    CHECK(p.max_retries == 0);
    CHECK(p.delay(5, rng) == 0ms);
  }
}
