# DRIFT_WITH_CUDA: build the CUDA drift kernel (plugins/kernels/laplace/
# laplace_cuda.cu, kernel "laplace" impl = "cuda"). Default ON when LibTorch has
# CUDA and nvcc is found, so that a build on a machine with nvcc but no GPU
# compiles and links the CUDA code too and it cannot rot between GPU sessions.
# Include after find_package(Torch): a CUDA LibTorch has enabled the CUDA
# language already (its Caffe2 config does) when it found nvcc.
#
#   DRIFT_CUDA_ARCHITECTURES  what nvcc builds (default "90-real;80-virtual":
#                             Hopper machine code plus PTX that newer GPUs, and
#                             Ampere/Ada through the driver's JIT, can run)
set(_drift_cuda_why "")
if(NOT C10_CUDA_LIBRARY)  # TorchConfig.cmake finds it in a CUDA LibTorch only
  set(_drift_cuda_why "the LibTorch found (${Torch_DIR}) has no CUDA")
else()
  get_property(_drift_langs GLOBAL PROPERTY ENABLED_LANGUAGES)
  if(NOT "CUDA" IN_LIST _drift_langs)
    if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
      set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
    endif()
    include(CheckLanguage)
    check_language(CUDA)
    if(NOT CMAKE_CUDA_COMPILER)
      set(_drift_cuda_why "no nvcc found (not on PATH, not /usr/local/cuda/bin/nvcc; "
                          "set CUDACXX or -DCMAKE_CUDA_COMPILER)")
    endif()
  endif()
endif()
if(_drift_cuda_why)
  set(_drift_cuda_default OFF)
else()
  set(_drift_cuda_default ON)
endif()
option(DRIFT_WITH_CUDA "Build the CUDA drift kernel (kernel laplace, impl = \"cuda\")"
       ${_drift_cuda_default})
set(DRIFT_CUDA_ARCHITECTURES "90-real;80-virtual" CACHE STRING
    "CUDA architectures of the drift CUDA kernels (CMake CUDA_ARCHITECTURES syntax)")

if(DRIFT_WITH_CUDA)
  if(_drift_cuda_why)
    message(FATAL_ERROR "drift: DRIFT_WITH_CUDA=ON but ${_drift_cuda_why}")
  endif()
  enable_language(CUDA)
  # A CUDA LibTorch's config appends -gencode flags for every architecture it
  # was built for (some of which a newer nvcc refuses) to CMAKE_CUDA_FLAGS; our
  # kernels are built for DRIFT_CUDA_ARCHITECTURES only.
  string(REGEX REPLACE "-gencode[ =]arch=[^ ]+" "" CMAKE_CUDA_FLAGS "${CMAKE_CUDA_FLAGS}")
  message(STATUS "drift: DRIFT_WITH_CUDA=ON: CUDA drift kernel for "
                 "${DRIFT_CUDA_ARCHITECTURES} with ${CMAKE_CUDA_COMPILER} "
                 "${CMAKE_CUDA_COMPILER_VERSION}")
else()
  if(NOT _drift_cuda_why)
    set(_drift_cuda_why "switched off with -DDRIFT_WITH_CUDA=OFF")
  endif()
  message(STATUS "drift: DRIFT_WITH_CUDA=OFF (${_drift_cuda_why}): kernel laplace is built "
                 "without its CUDA kernel; impl = \"auto\" runs CUDA tensors through the plain "
                 "LibTorch code, impl = \"cuda\" is refused")
endif()
