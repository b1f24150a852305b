// image-worker's pure pieces (examples/image-worker/image.hpp, request.hpp,
// test_images.hpp): sniffing, EXIF GPS, the storage path, the fetch request
// parser. No servers, no ZooKeeper, no files. Compiled only when the
// example's dependencies (libexif, libjpeg, zlib, nlohmann-json) were found.
#ifdef ZKRECIPES_IMAGE_WORKER

#include "image.hpp"
#include "request.hpp"
#include "test_images.hpp"

#include <doctest/doctest.h>
#include <zlib.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using namespace image_worker;
namespace fs = std::filesystem;

namespace {

// 2026-12-01 05:15:00 UTC
const std::chrono::system_clock::time_point when =
    std::chrono::sys_days{std::chrono::year{2026} / 12 / 1} + std::chrono::hours{5} + std::chrono::minutes{15};

bool safe_dir_name(const std::string& d) {
  if (d.empty() || d == "." || d == ".." || d.size() > 40) return false;
  for (char c : d)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) return false;
  return d.front() != '-' && d.back() != '-';
}

gps_fix at(double lat, double lon, std::optional<double> alt = std::nullopt, std::string area = {}) {
  gps_fix f;
  f.lat = lat;
  f.lon = lon;
  f.alt = alt;
  f.area = std::move(area);
  return f;
}

/// A valid JPEG with these GPS tags, and why read_gps refuses it.
std::string refusal(const gps_tags& t) {
  const std::string jpeg = make_jpeg_tags(8, 8, t);
  REQUIRE(sniff(jpeg) == image_kind::jpeg);
  std::string why;
  const auto g = read_gps(jpeg, &why);
  CHECK_MESSAGE(!g, why);
  CHECK(!why.empty());
  return why;
}

gps_tags good_tags() { return gps_tags_for(at(37.7749, -122.4194, 12.5, "Golden Gate")); }

} // namespace

TEST_SUITE("image-worker unit") {

TEST_CASE("image-worker unit: a generated JPEG with GPS round-trips through sniff and read_gps") {
  struct tc {
    gps_fix fix;
    ExifByteOrder order;
  };
  const std::vector<tc> cases = {
      {at(37.7749, -122.4194, 12.5, "Golden Gate Park"), EXIF_BYTE_ORDER_INTEL},
      {at(-33.856784, 151.215297, -3.25, "Sydney"), EXIF_BYTE_ORDER_MOTOROLA},
      {at(0.0, 0.0), EXIF_BYTE_ORDER_INTEL},
      {at(90.0, -180.0, 0.0, "pole"), EXIF_BYTE_ORDER_MOTOROLA},
      {at(-89.9999994, 179.9999994, std::nullopt, "../../x"), EXIF_BYTE_ORDER_INTEL},
      {at(51.5, -0.1, 8848.0, std::string("a\xff\x00" "b", 4)), EXIF_BYTE_ORDER_INTEL},
  };
  for (const auto& c : cases) {
    CAPTURE(c.fix.lat);
    CAPTURE(c.fix.lon);
    auto tags = gps_tags_for(c.fix);
    tags.order = c.order;
    const std::string jpeg = make_jpeg_tags(16, 12, tags, 90);
    CHECK(sniff(jpeg) == image_kind::jpeg);
    CHECK(why_not_image(jpeg).empty());
    std::string why;
    const auto g = read_gps(jpeg, &why);
    REQUIRE_MESSAGE(g, why);
    CHECK(std::fabs(g->lat - c.fix.lat) < 1e-6);
    CHECK(std::fabs(g->lon - c.fix.lon) < 1e-6);
    REQUIRE(g->alt.has_value() == c.fix.alt.has_value());
    if (c.fix.alt) CHECK(std::fabs(*g->alt - *c.fix.alt) < 1e-3);
    CHECK(g->area == c.fix.area);
  }
  // make_jpeg itself, the generator the demo uses.
  const auto jpeg = make_jpeg(32, 32, at(48.8584, 2.2945, 35.0, "Paris"), 200);
  const auto g = read_gps(jpeg);
  REQUIRE(g);
  CHECK(std::fabs(g->lat - 48.8584) < 1e-6);
  CHECK(std::fabs(g->lon - 2.2945) < 1e-6);
  CHECK(g->area == "Paris");
  CHECK(place_dir(g) == "paris");
}

TEST_CASE("image-worker unit: images without GPS, and PNGs, give no position and say why") {
  std::string why;
  const auto plain = make_jpeg(8, 8, std::nullopt, 10);
  CHECK(sniff(plain) == image_kind::jpeg);
  CHECK_FALSE(read_gps(plain, &why));
  CHECK(why.find("no EXIF") != std::string::npos);

  const auto png = make_png(7, 5);
  CHECK(sniff(png) == image_kind::png);
  CHECK(why_not_image(png).empty());
  why.clear();
  CHECK_FALSE(read_gps(png, &why));
  CHECK(why.find("PNG") != std::string::npos);

  why.clear();
  CHECK_FALSE(read_gps("<html></html>", &why));
  CHECK(why.find("not an image") != std::string::npos);

  // An EXIF segment without a GPS IFD, by hand: "Exif\0\0", a little-endian
  // TIFF header, an empty IFD 0.
  const std::string tiff("Exif\0\0II\x2a\0\x08\0\0\0\0\0\0\0\0\0", 20);
  const auto bare = make_jpeg_with_app1(8, 8, tiff);
  CHECK(sniff(bare) == image_kind::jpeg);
  why.clear();
  CHECK_FALSE(read_gps(bare, &why));
  CHECK(why.find("no GPS") != std::string::npos);
}

TEST_CASE("image-worker unit: non-images are refused with a reason") {
  const auto jpeg = make_jpeg(8, 8, at(1, 2, std::nullopt, "x"), 1);
  const auto png = make_png(4, 4);
  struct tc {
    std::string bytes;
    std::string reason; // a part of why_not_image
  };
  std::string bad_crc = png;
  bad_crc[8 + 8 + 3] ^= 1; // a width byte: the IHDR CRC no longer matches
  std::string zero_width = png.substr(0, 8) + std::string("\0\0\0\x0dIHDR\0\0\0\0\0\0\0\x04\x08\x02\0\0\0", 21);
  {
    const uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(zero_width.data() + 12), 17);
    for (int s = 24; s >= 0; s -= 8) zero_width += static_cast<char>((crc >> s) & 0xFF);
  }
  std::string no_sof("\xff\xd8\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00", 12);
  std::string stuffed("\xff\xd8\xff\x00", 4);
  std::string bad_len("\xff\xd8\xff\xe0\x00\x01", 6);
  const std::vector<tc> cases = {
      {"", "empty"},
      {"<html><body>not an image</body></html>", "not JPEG or PNG (starts with 3c 68 74 6d)"},
      {"GIF89a", "not JPEG or PNG (starts with 47 49 46 38)"},
      {"plain text", "not JPEG or PNG"},
      {std::string("\xff", 1), "the start of a JPEG"},
      {std::string("\x89PN", 3), "the start of a PNG signature"},
      {std::string("\xff\xd8\xff", 3), "ends"},
      {jpeg.substr(0, 40), "runs past the end"},       // cut inside the EXIF segment
      {jpeg.substr(0, jpeg.find(std::string("\xff\xda", 2)) + 4), "runs past the end"}, // cut in SOS
      {jpeg.substr(0, jpeg.find(std::string("\xff\xda", 2))), "no SOS"},
      {no_sof, "before any frame header"},
      {stuffed, "stuffed byte"},
      {bad_len, "segment length of 1"},
      {std::string("\xff\xd8\xff\xd8", 4), "second SOI"},
      {std::string("\xff\xd8\xff\xd9", 4), "EOI"},
      {std::string("\xff\xd8\xffX", 4), "ff 58"},
      {png.substr(0, 8), "a PNG signature but no IHDR"},
      {png.substr(0, 8) + std::string("\0\0\0\x0dIDAT", 8), "a PNG signature but no IHDR"},
      {png.substr(0, 20), "truncated IHDR"},
      {bad_crc, "CRC"},
      {zero_width, "zero width"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.reason);
    CHECK(sniff(c.bytes) == image_kind::none);
    const auto why = why_not_image(c.bytes);
    CHECK_MESSAGE(why.find(c.reason) != std::string::npos, why);
    std::string gwhy;
    CHECK_FALSE(read_gps(c.bytes, &gwhy));
    CHECK(!gwhy.empty());
  }
  // The same images whole are images; a PNG with junk after IEND still is.
  CHECK(sniff(jpeg) == image_kind::jpeg);
  CHECK(sniff(png + "junk") == image_kind::png);
  // Names in bytes, not by the caller's say-so: a PNG is not a JPEG.
  CHECK(sniff(png) != image_kind::jpeg);
}

TEST_CASE("image-worker unit: our CRC-32 is zlib's") {
  for (std::string s : {std::string(), std::string("IHDR"), std::string("\0\xff\x10 hello", 9)})
    CHECK(detail::crc32(s) == crc32(0L, reinterpret_cast<const Bytef*>(s.data()), static_cast<uInt>(s.size())));
}

TEST_CASE("image-worker unit: bad coordinates are refused with a reason") {
  SUBCASE("latitude over 90") {
    auto t = good_tags();
    t.lat = dms(95.0);
    CHECK(refusal(t).find("latitude 95") != std::string::npos);
  }
  SUBCASE("longitude over 180") {
    auto t = good_tags();
    t.lon = dms(180.5);
    t.lon_ref = "W";
    CHECK(refusal(t).find("longitude -180.5") != std::string::npos);
  }
  SUBCASE("minutes that carry the latitude past 90") {
    auto t = good_tags();
    t.lat = std::array<rational, 3>{rational{90, 1}, rational{1, 1}, rational{0, 1}};
    CHECK(refusal(t).find("out of range") != std::string::npos);
  }
  SUBCASE("a huge degrees rational") {
    auto t = good_tags();
    t.lon = std::array<rational, 3>{rational{0xFFFFFFFFu, 1}, rational{0, 1}, rational{0, 1}};
    CHECK(refusal(t).find("longitude") != std::string::npos);
  }
  SUBCASE("zero denominators") {
    auto t = good_tags();
    t.lat = std::array<rational, 3>{rational{37, 1}, rational{46, 0}, rational{0, 1}};
    CHECK(refusal(t).find("GPSLatitude has a zero denominator") != std::string::npos);
    t = good_tags();
    t.lon = std::array<rational, 3>{rational{0, 0}, rational{0, 1}, rational{0, 1}};
    CHECK(refusal(t).find("GPSLongitude has a zero denominator") != std::string::npos);
  }
  SUBCASE("missing tags and references") {
    auto t = good_tags();
    t.lat.reset();
    CHECK(refusal(t).find("GPSLatitude is missing") != std::string::npos);
    t = good_tags();
    t.lon_ref.reset();
    CHECK(refusal(t).find("GPSLongitudeRef is missing") != std::string::npos);
    t = good_tags();
    t.lat_ref = "X";
    CHECK(refusal(t).find("GPSLatitudeRef is not N or S") != std::string::npos);
    t = good_tags();
    t.lon_ref = "N";
    CHECK(refusal(t).find("GPSLongitudeRef is not E or W") != std::string::npos);
  }
  SUBCASE("a bad altitude is dropped, the position kept") {
    auto t = good_tags();
    t.alt = rational{5, 0};
    auto g = read_gps(make_jpeg_tags(8, 8, t));
    REQUIRE(g);
    CHECK_FALSE(g->alt);
    t.alt = rational{0xFFFFFFFFu, 1}; // 4e9 m
    g = read_gps(make_jpeg_tags(8, 8, t));
    REQUIRE(g);
    CHECK_FALSE(g->alt);
    t.alt = rational{1500, 10};
    t.alt_ref = 1;
    g = read_gps(make_jpeg_tags(8, 8, t));
    REQUIRE(g);
    REQUIRE(g->alt);
    CHECK(*g->alt == doctest::Approx(-150.0));
  }
}

TEST_CASE("image-worker unit: area text: trailing NULs dropped, UCS-2 keeps its ASCII") {
  auto t = good_tags();
  t.area = std::string("Tokyo\0\0", 7); // NUL-terminated, as many cameras write it
  auto nul = read_gps(make_jpeg_tags(8, 8, t));
  REQUIRE(nul);
  CHECK(nul->area == "Tokyo");
  t.area_code = std::string("UNICODE\0", 8);
  t.area = std::string("O\0s\0l\0o\0\xe5\0", 10); // "Oslo" + U+00E5, little-endian like the file
  const auto g = read_gps(make_jpeg_tags(8, 8, t));
  REQUIRE(g);
  CHECK(g->area == "Oslo\xff");
  CHECK(place_dir(g) == "oslo");
}

TEST_CASE("image-worker unit: place_dir makes hostile areas safe names") {
  struct tc {
    std::string area, dir;
  };
  const std::vector<tc> cases = {
      {"../../x", "x"},
      {"/etc/passwd", "etc-passwd"},
      {"..", "n37.8-w122.4"}, // nothing left: the grid cell
      {".", "n37.8-w122.4"},
      {"", "n37.8-w122.4"},
      {"/", "n37.8-w122.4"},
      {"\\..\\..\\windows", "windows"},
      {std::string("a\0b", 3), "a-b"},
      {std::string("\xff\xfe\x00", 3), "n37.8-w122.4"},
      {"S\xc3\xa3o Paulo", "s-o-paulo"},
      {"  Golden  Gate -- Park!  ", "golden-gate-park"},
      {"New-York", "new-york"},
      {"UPPER lower 123", "upper-lower-123"},
      {"n37.8-w122.4", "n37-8-w122-4"}, // an area cannot pose as a grid cell
      {std::string(300, 'a'), std::string(40, 'a')},
      {std::string(39, 'a') + "/b", std::string(39, 'a')}, // no dangling '-'
      {std::string(38, 'a') + "/b", std::string(38, 'a') + "-b"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.area);
    const auto d = place_dir(at(37.7749, -122.4194, std::nullopt, c.area));
    CHECK(d == c.dir);
    CHECK(safe_dir_name(d));
    const auto p = storage_path("/srv/images", at(37.7749, -122.4194, std::nullopt, c.area), when, "net-a", "img-1",
                                image_kind::jpeg);
    CHECK(inside("/srv/images", p));
    CHECK(p.parent_path() == fs::path("/srv/images") / d);
  }
  CHECK(place_dir(std::nullopt) == "unknown-place");
  CHECK(place_dir(at(NAN, 1)) == "unknown-place");
  CHECK(place_dir(at(91, 1)) == "unknown-place");
  CHECK(place_dir(at(1, -181)) == "unknown-place");
  CHECK(place_dir(at(NAN, 1, std::nullopt, "Rome")) == "rome");
}

TEST_CASE("image-worker unit: grid cells") {
  CHECK(place_dir(at(37.7749, -122.4194)) == "n37.8-w122.4");
  CHECK(place_dir(at(-33.8568, 151.2153)) == "s33.9-e151.2");
  CHECK(place_dir(at(0, 0)) == "n0.0-e0.0");
  CHECK(place_dir(at(-0.04, -0.04)) == "n0.0-e0.0"); // rounds to zero: no "s0.0"
  CHECK(place_dir(at(-0.05, 0.05)) == "s0.1-e0.1");
  CHECK(place_dir(at(90, 180)) == "n90.0-e180.0");
  CHECK(place_dir(at(-90, -180)) == "s90.0-w180.0");
  CHECK(place_dir(at(1.25, 2.0)) != place_dir(at(1.0, 2.0)));
}

TEST_CASE("image-worker unit: a hostile EXIF area read from a file stays inside the root") {
  for (const std::string& area : {std::string("../../x"), std::string("/etc/passwd"), std::string(".."),
                                  std::string("\xff\x00/../", 6), std::string(500, '/')}) {
    CAPTURE(area);
    const auto jpeg = make_jpeg(8, 8, at(10, 20, std::nullopt, area), 5);
    const auto g = read_gps(jpeg);
    REQUIRE(g);
    const auto d = place_dir(g);
    CHECK(safe_dir_name(d));
    const auto p = storage_path("images", g, when, "net-b", "a.b_c-1", image_kind::jpeg);
    CHECK(inside("images", p));
    CHECK(p.parent_path().filename() == d);
  }
}

TEST_CASE("image-worker unit: uniform_name and storage_path") {
  CHECK(uniform_name(when, "net-a", "photo-1", image_kind::jpeg) == "20261201T051500Z_net-a_photo-1.jpg");
  CHECK(uniform_name(when + std::chrono::milliseconds(999), "n", "x", image_kind::png) == "20261201T051500Z_n_x.png");
  CHECK(uniform_name(std::chrono::system_clock::time_point{}, "n", "x", image_kind::png) == "19700101T000000Z_n_x.png");
  CHECK_THROWS_AS(uniform_name(when, "Net", "x", image_kind::jpeg), std::invalid_argument);
  CHECK_THROWS_AS(uniform_name(when, "", "x", image_kind::jpeg), std::invalid_argument);
  CHECK_THROWS_AS(uniform_name(when, "n/a", "x", image_kind::jpeg), std::invalid_argument);
  CHECK_THROWS_AS(uniform_name(when, "n", "..", image_kind::jpeg), std::invalid_argument);
  CHECK_THROWS_AS(uniform_name(when, "n", "a/b", image_kind::jpeg), std::invalid_argument);
  CHECK_THROWS_AS(uniform_name(when, "n", "x", image_kind::none), std::invalid_argument);
  CHECK_THROWS_AS(storage_path("/r", std::nullopt, when, "n", ".hidden", image_kind::jpeg), std::invalid_argument);

  const auto p = storage_path("/srv/images", at(37.7749, -122.4194), when, "net-a", "photo-1", image_kind::jpeg);
  CHECK(p == fs::path("/srv/images/n37.8-w122.4/20261201T051500Z_net-a_photo-1.jpg"));
  CHECK(storage_path("/srv/images/", std::nullopt, when, "net-a", "p", image_kind::png) ==
        fs::path("/srv/images/unknown-place/20261201T051500Z_net-a_p.png"));
}

TEST_CASE("image-worker unit: inside() is a lexical check that sees through .. and /") {
  CHECK(inside("/srv/images", "/srv/images/a/b.jpg"));
  CHECK(inside("/srv/images/", "/srv/images/a"));
  CHECK(inside("/srv/images", "/srv/images/./a/../b"));
  CHECK(inside("images", "images/x/y"));
  CHECK_FALSE(inside("/srv/images", "/srv/images"));
  CHECK_FALSE(inside("/srv/images", "/srv/images/."));
  CHECK_FALSE(inside("/srv/images", "/srv/images/a/../.."));
  CHECK_FALSE(inside("/srv/images", "/srv/images/../etc/passwd"));
  CHECK_FALSE(inside("/srv/images", "/srv/images-evil/x"));
  CHECK_FALSE(inside("/srv/images", "/etc/passwd"));
  CHECK_FALSE(inside("/srv/images", "srv/images/x"));
  CHECK_FALSE(inside("images", "/images/x"));
  CHECK_FALSE(inside("", "x"));
  // What a joined "/" or ".." would do, caught.
  CHECK_FALSE(inside("/srv/images", fs::path("/srv/images") / "/etc/passwd"));
  CHECK_FALSE(inside("/srv/images", fs::path("/srv/images") / ".." / "x"));
}

TEST_CASE("image-worker unit: a valid fetch request parses") {
  const auto r = parse_fetch_request(R"({"url": "http://127.0.0.1:8081/img/a.jpg?x=1", "network": "net-a",
                                         "dataId": "Photo_1.v2-b", "extra": [1, 2]})");
  REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message));
  CHECK(r.value().url == "http://127.0.0.1:8081/img/a.jpg?x=1");
  CHECK(r.value().where.scheme == "http");
  CHECK(r.value().where.host == "127.0.0.1");
  CHECK(r.value().where.port == 8081);
  CHECK(r.value().where.path == "/img/a.jpg?x=1");
  CHECK(r.value().network == "net-a");
  CHECK(r.value().data_id == "Photo_1.v2-b");

  const auto h = parse_fetch_request(R"({"url":"http://store-1.net-a.local:65535/","network":"a","dataId":"x"})");
  REQUIRE(h.has_value());
  CHECK(h.value().where.host == "store-1.net-a.local");
  CHECK(h.value().where.port == 65535);
  CHECK(h.value().where.path == "/");
  // 32-character tag, 64-character id: the limits themselves.
  const auto lim = parse_fetch_request(R"({"url":"http://h:1/p","network":")" + std::string(32, 'a') +
                                       R"(","dataId":")" + std::string(64, 'Z') + R"("})");
  CHECK(lim.has_value());
  const auto long_path = parse_fetch_request(R"({"url":"http://h:1/)" + std::string(1023, 'p') +
                                             R"(","network":"a","dataId":"x"})");
  REQUIRE(long_path.has_value());
  CHECK(long_path.value().where.path.size() == max_url_path);
}

TEST_CASE("image-worker unit: fetch request errors name the field and carry the status") {
  struct tc {
    std::string body;
    int status;
    std::string code, field, says;
  };
  const std::string ok_url = R"("url":"http://127.0.0.1:8081/a.jpg")";
  const std::string ok_net = R"("network":"net-a")";
  const std::string ok_id = R"("dataId":"d1")";
  auto body = [](const std::string& a, const std::string& b, const std::string& c) { return "{" + a + "," + b + "," + c + "}"; };
  auto url = [&](const std::string& u) { return body(R"("url":)" + nlohmann::json(u).dump(), ok_net, ok_id); };
  auto net = [&](const std::string& n) { return body(ok_url, R"("network":)" + nlohmann::json(n).dump(), ok_id); };
  auto id = [&](const std::string& d) { return body(ok_url, ok_net, R"("dataId":)" + nlohmann::json(d).dump()); };
  std::string big = body(ok_url, ok_net, ok_id);
  big.insert(1, R"("pad":")" + std::string(64 * 1024, 'p') + R"(",)");
  const std::vector<tc> cases = {
      {big, 413, "too_large", "", "over the limit of 65536"},
      {"", 400, "bad_request", "", "not valid JSON"},
      {"{", 400, "bad_request", "", "not valid JSON"},
      {"{\"url\": \"\xff\"}", 400, "bad_request", "", "not valid JSON"},
      {"[1,2]", 400, "bad_request", "", "not a JSON object"},
      {"\"str\"", 400, "bad_request", "", "not a JSON object"},
      {"null", 400, "bad_request", "", "not a JSON object"},
      {"{" + ok_net + "," + ok_id + "}", 400, "bad_request", "url", "\"url\" is missing"},
      {body(R"("url":5)", ok_net, ok_id), 400, "bad_request", "url", "\"url\" is not a string"},
      {url("https://127.0.0.1:8081/a"), 400, "bad_request", "url", "\"url\" has a scheme other than http"},
      {url("file:///etc/passwd"), 400, "bad_request", "url", "\"url\" has a scheme other than http"},
      {url("HTTP://h:1/a"), 400, "bad_request", "url", "\"url\""},
      {url("127.0.0.1:8081/a"), 400, "bad_request", "url", "\"url\" does not start with http://"},
      {url("http://127.0.0.1:8081"), 400, "bad_request", "url", "\"url\" has no path"},
      {url("http://127.0.0.1/a"), 400, "bad_request", "url", "\"url\" has no port"},
      {url("http://127.0.0.1:0/a"), 400, "bad_request", "url", "\"url\" has an invalid port"},
      {url("http://127.0.0.1:65536/a"), 400, "bad_request", "url", "\"url\" has an invalid port"},
      {url("http://127.0.0.1:080/a"), 400, "bad_request", "url", "\"url\" has an invalid port"},
      {url("http://127.0.0.1:80a/a"), 400, "bad_request", "url", "\"url\" has an invalid port"},
      {url("http://127.0.0.1:/a"), 400, "bad_request", "url", "\"url\" has an invalid port"},
      {url("http://127.0.0.1:-1/a"), 400, "bad_request", "url", "\"url\" has an invalid port"},
      {url("http://:80/a"), 400, "bad_request", "url", "\"url\" has an invalid host"},
      {url("http://256.0.0.1:80/a"), 400, "bad_request", "url", "\"url\" has an invalid host"},
      {url("http://1.2.3:80/a"), 400, "bad_request", "url", "\"url\" has an invalid host"},
      {url("http://h_st:80/a"), 400, "bad_request", "url", "\"url\" has an invalid host"},
      {url("http://-h:80/a"), 400, "bad_request", "url", "\"url\" has an invalid host"},
      {url("http://a..b:80/a"), 400, "bad_request", "url", "\"url\" has an invalid host"},
      {url("http://user@h:80/a"), 400, "bad_request", "url", "\"url\" has user information"},
      {url("http://[::1]:80/a"), 400, "bad_request", "url", "\"url\" has an IPv6 literal"},
      {url("http://h:80/a b"), 400, "bad_request", "url", "\"url\" has whitespace"},
      {url("http://h:80/a\tb"), 400, "bad_request", "url", "\"url\" has whitespace"},
      {url("http://h:80/a\nb"), 400, "bad_request", "url", "\"url\" has whitespace"},
      {url("http://h:80/a\x7f"), 400, "bad_request", "url", "\"url\" has whitespace"},
      {url("http://h:80/\xc3\xa9"), 400, "bad_request", "url", "\"url\" has whitespace"},
      {url("http://h:80/" + std::string(1024, 'a')), 400, "bad_request", "url", "\"url\" has a path over 1024 bytes"},
      {"{" + ok_url + "," + ok_id + "}", 400, "bad_request", "network", "\"network\" is missing"},
      {body(ok_url, R"("network":["net-a"])", ok_id), 400, "bad_request", "network", "\"network\" is not a string"},
      {net(""), 400, "bad_request", "network", "\"network\" must be 1 to 32"},
      {net("Net-A"), 400, "bad_request", "network", "\"network\" must be 1 to 32"},
      {net("net_a"), 400, "bad_request", "network", "\"network\" must be 1 to 32"},
      {net("../x"), 400, "bad_request", "network", "\"network\" must be 1 to 32"},
      {net(std::string(33, 'a')), 400, "bad_request", "network", "\"network\" must be 1 to 32"},
      {"{" + ok_url + "," + ok_net + "}", 400, "bad_request", "dataId", "\"dataId\" is missing"},
      {body(ok_url, ok_net, R"("dataId":7)"), 400, "bad_request", "dataId", "\"dataId\" is not a string"},
      {id(""), 400, "bad_request", "dataId", "\"dataId\" must be 1 to 64"},
      {id("."), 400, "bad_request", "dataId", "not start with '.'"},
      {id(".."), 400, "bad_request", "dataId", "not start with '.'"},
      {id(".hidden"), 400, "bad_request", "dataId", "not start with '.'"},
      {id("a/b"), 400, "bad_request", "dataId", "\"dataId\" must be 1 to 64"},
      {id("a b"), 400, "bad_request", "dataId", "\"dataId\" must be 1 to 64"},
      {id(std::string("a\0b", 3)), 400, "bad_request", "dataId", "\"dataId\" must be 1 to 64"},
      {id(std::string(65, 'a')), 400, "bad_request", "dataId", "\"dataId\" must be 1 to 64"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.says);
    const auto r = parse_fetch_request(c.body);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().status == c.status);
    CHECK(r.error().code == c.code);
    CHECK(r.error().field == c.field);
    CHECK_MESSAGE(r.error().message.find(c.says) != std::string::npos, r.error().message);
  }
  // Exactly at the size limit is not too large.
  std::string at_limit = body(ok_url, ok_net, ok_id);
  at_limit.insert(1, std::string(max_request_body - at_limit.size(), ' '));
  REQUIRE(at_limit.size() == max_request_body);
  CHECK(parse_fetch_request(at_limit).has_value());
}

} // TEST_SUITE

#endif // ZKRECIPES_IMAGE_WORKER
