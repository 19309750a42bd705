# Locates LibTorch inside a Python environment's PyTorch through
# torch.utils.cmake_prefix_path. DRIFT_PYTHON picks the interpreter; the default
# is the project's own venv (created by scripts/setup.sh). drift-report runs
# with the same interpreter.
if(NOT DRIFT_PYTHON)
  if(EXISTS "${CMAKE_SOURCE_DIR}/.venv/bin/python")
    set(_drift_py "${CMAKE_SOURCE_DIR}/.venv/bin/python")
  else()
    find_program(_drift_py NAMES python3 python)
  endif()
  set(DRIFT_PYTHON "${_drift_py}" CACHE FILEPATH "Python with PyTorch (LibTorch) and h5py/pandas/matplotlib")
endif()
if(NOT Torch_DIR)
  execute_process(
    COMMAND "${DRIFT_PYTHON}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE _drift_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _drift_torch_rc ERROR_QUIET)
  if(NOT _drift_torch_rc EQUAL 0 OR NOT _drift_torch_prefix)
    message(FATAL_ERROR "drift: cannot import torch with ${DRIFT_PYTHON}. "
      "Run scripts/setup.sh (it installs PyTorch 2.11 into .venv), or pass "
      "-DDRIFT_PYTHON=/path/to/python or -DTorch_DIR=/path/to/share/cmake/Torch.")
  endif()
  list(APPEND CMAKE_PREFIX_PATH "${_drift_torch_prefix}")
endif()
