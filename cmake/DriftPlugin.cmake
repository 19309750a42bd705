# drift_add_plugin(<target> SOURCES <files>... [LIBRARIES <libs>...])
#
# Builds a drift plugin: a shared library (module) linked against the drift SDK
# (drift::sdk) that exports `drift_plugin_entry`. Used for the plugins in the
# drift tree and, through find_package(drift CONFIG REQUIRED), by plugins built
# outside it. In the tree the plugin lands in <build>/lib/drift/plugins and is
# installed to <prefix>/lib/drift/plugins, where drift finds it by itself;
# elsewhere it stays in the caller's build directory: point DRIFT_PLUGIN_PATH (or
# `[plugins] paths` in an experiment file) at it.
function(drift_add_plugin target)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "drift_add_plugin(${target}): no SOURCES given")
  endif()
  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE drift::sdk ${ARG_LIBRARIES})
  set_target_properties(${target} PROPERTIES PREFIX "" CXX_VISIBILITY_PRESET hidden
                                             VISIBILITY_INLINES_HIDDEN ON)
  if(DEFINED DRIFT_PLUGIN_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES
      LIBRARY_OUTPUT_DIRECTORY ${DRIFT_PLUGIN_OUTPUT_DIRECTORY}
      INSTALL_RPATH "$ORIGIN/../..;${DRIFT_TORCH_LIBDIR}"
      BUILD_RPATH "$ORIGIN/../..;${DRIFT_TORCH_LIBDIR}")
    install(TARGETS ${target} LIBRARY DESTINATION ${DRIFT_PLUGIN_SUBDIR})
  endif()
endfunction()
