// Tables as HDF5 compound datasets: one row per record, one named field per
// column (int64, float64 or variable-length UTF-8 string), so that
// pandas.DataFrame(h5py.File(path)[name][()]) gives the table directly.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "io/h5.hpp"

namespace drift::io {

using Cell = std::variant<int64_t, double, std::string>;

class Table {
 public:
  enum class Type { Int, Float, String };
  struct Column {
    std::string name;
    Type type;
  };

  // Appends a column; existing rows get a default (0, NaN, "").
  void add_column(const std::string& name, Type type);
  bool has_column(const std::string& name) const { return index(name) >= 0; }
  // Starts a new row with every column at its default.
  void new_row();
  // Sets a field of the last row; adds the column (with the value's type) if needed.
  void set(const std::string& name, Cell value);

  const std::vector<Column>& columns() const { return columns_; }
  size_t rows() const { return rows_.size(); }
  const Cell& at(size_t row, const std::string& name) const;
  int index(const std::string& name) const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<Cell>> rows_;
};

// Writes `table` as a compound dataset `name` (parents must exist).
absl::Status write_table(H5File& f, const std::string& name, const Table& table);
// Reads a compound dataset of int/float/string fields (other integer and float
// widths are widened).
absl::StatusOr<Table> read_table(const H5File& f, const std::string& name);

}  // namespace drift::io
