# Project-wide warning and sanitizer flags, and the helpers each component uses.

set(SENNINGEN_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
    -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wformat=2 -Wimplicit-fallthrough)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    # GCC 12 at -O3 reports -Wrestrict inside libstdc++ for `"/" + std::string(...)` (GCC bug
    # 105329, fixed in 13): a false positive that would fail every Release build with -Werror.
    list(APPEND SENNINGEN_WARNINGS -Wno-restrict)
endif()
if(SENNINGEN_WERROR)
    list(APPEND SENNINGEN_WARNINGS -Werror)
endif()

if(SENNINGEN_SANITIZE)
    add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
    add_link_options(-fsanitize=address,undefined)
endif()
if(SENNINGEN_SANITIZE OR SENNINGEN_FUZZ)
    # Bounds checks in the standard library (span::subspan/first, vector::operator[]): a slice
    # past its buffer aborts at the slice, not at some later read the sanitizer may miss.
    add_compile_definitions(_GLIBCXX_ASSERTIONS)
endif()

# senningen_library(NAME DIR [DEPS ...]): one static library per component, sources
# found under DIR/src, public headers under DIR/include.
function(senningen_library name)
    cmake_parse_arguments(ARG "" "" "DEPS;PRIVATE_DEPS" ${ARGN})
    file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/*.cc)
    if(NOT srcs)
        message(STATUS "${name}: no sources yet, skipped")
        return()
    endif()
    add_library(${name} STATIC ${srcs})
    target_include_directories(${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include
                                       PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
    target_compile_options(${name} PRIVATE ${SENNINGEN_WARNINGS})
    target_link_libraries(${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
endfunction()

# senningen_executable(NAME SOURCE DEPS...): a thin main over component libraries.
function(senningen_executable name source)
    add_executable(${name} ${source})
    target_compile_options(${name} PRIVATE ${SENNINGEN_WARNINGS})
    target_link_libraries(${name} PRIVATE ${ARGN})
    install(TARGETS ${name} RUNTIME DESTINATION bin)
endfunction()
