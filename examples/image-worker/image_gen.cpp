// image-gen: writes photos for a store to serve, made by code (no image
// files are downloaded or checked in): JPEGs with EXIF GPS data for a few
// places (some with an area name, some with coordinates only, some without
// GPS) and a PNG. Prints one line per file: its name and the directory
// image-api will file it under.
//
//   image-gen --dir ./store-a --count 12 [--prefix img]
#include "test_images.hpp"

#include <CLI/CLI.hpp>

#include <filesystem>
#include <fstream>
#include <vector>

namespace fs = std::filesystem;
using namespace image_worker;

int main(int argc, char** argv) {
  CLI::App app{"image-gen: JPEGs with EXIF GPS (and a PNG) for the image-worker demo"};
  std::string dir, prefix = "img";
  int count = 12;
  app.add_option("--dir", dir, "where to write them (created if missing)")->required();
  app.add_option("--count", count, "how many images")->check(CLI::Range(1, 10000));
  app.add_option("--prefix", prefix, "file name prefix");
  CLI11_PARSE(app, argc, argv);
  if (!valid_data_id(prefix)) {
    std::fprintf(stderr, "image-gen: --prefix must be 1 to 64 of A-Z a-z 0-9 _ . -\n");
    return 2;
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    std::fprintf(stderr, "image-gen: cannot create %s: %s\n", dir.c_str(), ec.message().c_str());
    return 1;
  }
  const std::vector<std::optional<gps_fix>> places = {
      gps_fix{37.7694, -122.4862, 54.0, "Golden Gate Park"},
      gps_fix{48.8556, 2.2986, std::nullopt, "Champ de Mars"},
      gps_fix{51.5007, -0.1246, 12.0, ""}, // coordinates only: a grid cell
      gps_fix{-33.8568, 151.2153, std::nullopt, "Sydney Opera House"},
      std::nullopt, // no GPS at all
  };
  for (int i = 0; i < count; ++i) {
    const bool png = i % 6 == 5;
    const auto& fix = places[static_cast<std::size_t>(i) % places.size()];
    std::string bytes;
    try {
      bytes = png ? make_png(160, 120, static_cast<std::uint8_t>(40 + i * 13))
                  : make_jpeg(160, 120, fix, static_cast<std::uint8_t>(40 + i * 13));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "image-gen: %s\n", e.what());
      return 1;
    }
    const auto name = prefix + "-" + std::to_string(i) + (png ? ".png" : ".jpg");
    std::ofstream out(fs::path(dir) / name, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) {
      std::fprintf(stderr, "image-gen: cannot write %s\n", name.c_str());
      return 1;
    }
    std::printf("%s %s\n", name.c_str(), place_dir(png ? std::nullopt : fix).c_str());
  }
  return 0;
}
