# Every external library, found once. See ../shared/DEPENDENCIES.md for the traps.
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCAP REQUIRED IMPORTED_TARGET libpcap)
pkg_check_modules(YARA REQUIRED IMPORTED_TARGET yara)
# Hyperscan: the literal prefilter in front of YARA stream scans (agent/src/scan).
pkg_check_modules(HS REQUIRED IMPORTED_TARGET libhs)
# RapidJSON (header-only): the streaming writer of the agent's metadata records. Debian's
# RapidJSONConfig.cmake only sets RAPIDJSON_INCLUDE_DIRS: wrap it in a target.
find_package(RapidJSON REQUIRED CONFIG)
find_path(RAPIDJSON_WRITER_DIR rapidjson/writer.h HINTS ${RAPIDJSON_INCLUDE_DIRS} REQUIRED)
add_library(RapidJSON::RapidJSON INTERFACE IMPORTED)
target_include_directories(RapidJSON::RapidJSON SYSTEM INTERFACE ${RAPIDJSON_WRITER_DIR})
find_package(OpenSSL REQUIRED)
# zlib: inflating the deflated members of ZIP archives carried by traffic (agent/src/files).
find_package(ZLIB REQUIRED)
find_package(SQLite3 REQUIRED)

# Debian's Poco DataPostgreSQL config looks for PostgreSQL::client, which nothing defines.
find_package(PostgreSQL REQUIRED)
if(NOT TARGET PostgreSQL::client)
    add_library(PostgreSQL::client INTERFACE IMPORTED)
    target_link_libraries(PostgreSQL::client INTERFACE PostgreSQL::PostgreSQL)
endif()
find_package(Poco REQUIRED COMPONENTS Foundation Util Net NetSSL Crypto JSON Data DataSQLite
             DataPostgreSQL)

# Broker 1.4 ships neither a CMake config nor a pkg-config file.
find_path(BROKER_INCLUDE_DIR broker/endpoint.hh REQUIRED)
find_library(BROKER_LIB broker REQUIRED)
find_library(CAF_OPENSSL_LIB caf_openssl REQUIRED)
find_library(CAF_IO_LIB caf_io REQUIRED)
find_library(CAF_CORE_LIB caf_core REQUIRED)
add_library(Broker::broker INTERFACE IMPORTED)
target_include_directories(Broker::broker SYSTEM INTERFACE ${BROKER_INCLUDE_DIR})
target_link_libraries(Broker::broker INTERFACE ${BROKER_LIB} ${CAF_OPENSSL_LIB} ${CAF_IO_LIB}
                      ${CAF_CORE_LIB} OpenSSL::SSL Threads::Threads)

if(SENNINGEN_BUILD_TESTS)
    find_package(GTest REQUIRED)
    include(GoogleTest)
endif()
