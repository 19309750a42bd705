#include "io/table.hpp"

#include <hdf5.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>

#include "absl/strings/str_cat.h"

namespace drift::io {

int Table::index(const std::string& name) const {
  for (size_t i = 0; i < columns_.size(); ++i)
    if (columns_[i].name == name) return static_cast<int>(i);
  return -1;
}

namespace {
Cell default_cell(Table::Type t) {
  switch (t) {
    case Table::Type::Int: return int64_t{0};
    case Table::Type::Float: return std::numeric_limits<double>::quiet_NaN();
    default: return std::string();
  }
}
Table::Type type_of(const Cell& c) {
  if (std::holds_alternative<int64_t>(c)) return Table::Type::Int;
  if (std::holds_alternative<double>(c)) return Table::Type::Float;
  return Table::Type::String;
}
}  // namespace

void Table::add_column(const std::string& name, Type type) {
  if (index(name) >= 0) return;
  columns_.push_back({name, type});
  for (auto& r : rows_) r.push_back(default_cell(type));
}

void Table::new_row() {
  std::vector<Cell> r;
  for (const auto& c : columns_) r.push_back(default_cell(c.type));
  rows_.push_back(std::move(r));
}

void Table::set(const std::string& name, Cell value) {
  if (rows_.empty()) new_row();
  int i = index(name);
  if (i < 0) {
    add_column(name, type_of(value));
    i = static_cast<int>(columns_.size()) - 1;
  }
  // Convert to the column's type.
  Type t = columns_[i].type;
  if (t == Type::Float && std::holds_alternative<int64_t>(value))
    value = static_cast<double>(std::get<int64_t>(value));
  else if (t == Type::Int && std::holds_alternative<double>(value))
    value = static_cast<int64_t>(std::get<double>(value));
  rows_.back()[i] = std::move(value);
}

const Cell& Table::at(size_t row, const std::string& name) const {
  int i = index(name);
  if (i < 0) throw std::out_of_range("table has no column '" + name + "'");
  return rows_.at(row)[i];
}

absl::Status write_table(H5File& f, const std::string& name, const Table& table) {
  const auto& cols = table.columns();
  // Row layout: 8 bytes per field (int64, double, or char* for vlen strings).
  const size_t width = 8 * std::max<size_t>(cols.size(), 1);
  hid_t str_t = H5Tcopy(H5T_C_S1);
  H5Tset_size(str_t, H5T_VARIABLE);
  H5Tset_cset(str_t, H5T_CSET_UTF8);
  hid_t mem_t = H5Tcreate(H5T_COMPOUND, width);
  for (size_t i = 0; i < cols.size(); ++i) {
    hid_t ft = cols[i].type == Table::Type::Int     ? H5T_NATIVE_INT64
               : cols[i].type == Table::Type::Float ? H5T_NATIVE_DOUBLE
                                                    : str_t;
    H5Tinsert(mem_t, cols[i].name.c_str(), 8 * i, ft);
  }
  std::vector<unsigned char> buf(width * std::max<size_t>(table.rows(), 1), 0);
  for (size_t r = 0; r < table.rows(); ++r) {
    for (size_t i = 0; i < cols.size(); ++i) {
      unsigned char* p = buf.data() + r * width + 8 * i;
      const Cell& c = table.at(r, cols[i].name);
      if (cols[i].type == Table::Type::Int) {
        int64_t v = std::get<int64_t>(c);
        std::memcpy(p, &v, 8);
      } else if (cols[i].type == Table::Type::Float) {
        double v = std::get<double>(c);
        std::memcpy(p, &v, 8);
      } else {
        const char* s = std::get<std::string>(c).c_str();
        std::memcpy(p, &s, sizeof s);
      }
    }
  }
  hsize_t dims[1] = {table.rows()};
  hid_t space = H5Screate_simple(1, dims, nullptr);
  hid_t ds = H5Dcreate2(static_cast<hid_t>(f.native_id()), name.c_str(), mem_t, space, H5P_DEFAULT,
                        H5P_DEFAULT, H5P_DEFAULT);
  herr_t rc = -1;
  if (ds >= 0) rc = table.rows() ? H5Dwrite(ds, mem_t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) : 0;
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(space);
  H5Tclose(mem_t);
  H5Tclose(str_t);
  if (ds < 0 || rc < 0)
    return absl::InternalError(absl::StrCat(f.path(), ": cannot write table '", name, "'"));
  return absl::OkStatus();
}

absl::StatusOr<Table> read_table(const H5File& f, const std::string& name) {
  hid_t ds = H5Dopen2(static_cast<hid_t>(f.native_id()), name.c_str(), H5P_DEFAULT);
  if (ds < 0) return absl::NotFoundError(absl::StrCat(f.path(), ": no table '", name, "'"));
  hid_t ft = H5Dget_type(ds);
  Table table;
  absl::Status st;
  if (H5Tget_class(ft) != H5T_COMPOUND) {
    st = absl::InvalidArgumentError(absl::StrCat(f.path(), ": dataset '", name, "' is not a table (compound)"));
  } else {
    hid_t space = H5Dget_space(ds);
    hssize_t n = H5Sget_simple_extent_npoints(space);
    int nf = H5Tget_nmembers(ft);
    hid_t str_t = H5Tcopy(H5T_C_S1);
    H5Tset_size(str_t, H5T_VARIABLE);
    H5Tset_cset(str_t, H5T_CSET_UTF8);
    const size_t width = 8 * std::max(nf, 1);
    hid_t mem_t = H5Tcreate(H5T_COMPOUND, width);
    for (int i = 0; i < nf; ++i) {
      char* fname = H5Tget_member_name(ft, i);
      if (!fname) continue;  // (a field without a name: the count check below refuses the table)
      H5T_class_t cls = H5Tget_member_class(ft, i);
      Table::Type t = cls == H5T_INTEGER ? Table::Type::Int
                      : cls == H5T_FLOAT ? Table::Type::Float
                                         : Table::Type::String;
      table.add_column(fname, t);
      H5Tinsert(mem_t, fname, 8 * i,
                t == Table::Type::Int ? H5T_NATIVE_INT64 : t == Table::Type::Float ? H5T_NATIVE_DOUBLE : str_t);
      H5free_memory(fname);
    }
    // A corrupt file may declare any number of rows, or fields with one name.
    std::vector<unsigned char> buf;
    if (static_cast<int>(table.columns().size()) != nf) {
      st = absl::DataLossError(absl::StrCat(f.path(), ": table '", name, "' has ", nf, " fields but ",
                                            table.columns().size(), " distinct names (a corrupt file?)"));
    } else if (n > 0 && static_cast<uint64_t>(n) > (uint64_t{1} << 40) / width) {
      st = absl::DataLossError(absl::StrCat(f.path(), ": table '", name, "' has ", n, " rows, too many to be read (a corrupt file?)"));
    } else {
      try {
        buf.assign(width * std::max<hssize_t>(n, 1), 0);
      } catch (const std::exception&) {
        st = absl::ResourceExhaustedError(absl::StrCat(f.path(), ": table '", name, "' has ", n, " rows, which cannot be allocated"));
      }
    }
    if (!st.ok()) {
      // (reported below)
    } else if (n > 0 && H5Dread(ds, mem_t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0) {
      st = absl::InternalError(absl::StrCat(f.path(), ": cannot read table '", name, "'"));
    } else {
      for (hssize_t r = 0; r < n; ++r) {
        table.new_row();
        for (int i = 0; i < nf; ++i) {
          const unsigned char* p = buf.data() + r * width + 8 * i;
          const auto& col = table.columns()[i];
          if (col.type == Table::Type::Int) {
            int64_t v; std::memcpy(&v, p, 8); table.set(col.name, v);
          } else if (col.type == Table::Type::Float) {
            double v; std::memcpy(&v, p, 8); table.set(col.name, v);
          } else {
            char* s; std::memcpy(&s, p, sizeof s);
            table.set(col.name, std::string(s ? s : ""));
          }
        }
      }
      if (n > 0) H5Dvlen_reclaim(mem_t, space, H5P_DEFAULT, buf.data());
    }
    H5Tclose(mem_t);
    H5Tclose(str_t);
    H5Sclose(space);
  }
  H5Tclose(ft);
  H5Dclose(ds);
  if (!st.ok()) return st;
  return table;
}

}  // namespace drift::io
