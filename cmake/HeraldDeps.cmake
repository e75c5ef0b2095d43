# Third-party libraries, all from Debian -dev packages.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(ZLIB REQUIRED)
find_package(OpenSSL 3 REQUIRED)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
pkg_check_modules(INIH REQUIRED IMPORTED_TARGET inih)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
