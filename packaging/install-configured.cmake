# Runs at install time (install(CODE) in CMakeLists.txt), so that the paths written into
# herald.pc and the systemd units are those of the prefix actually installed to
# (`cmake --install BUILD --prefix DIR` overrides the configured one). file(INSTALL)
# adds $DESTDIR and records the files in install_manifest.txt.
#
# In: HERALD_SRC, HERALD_BIN_DIR (a scratch directory), HERALD_VERSION, HERALD_LIBDIR,
#     HERALD_INCLUDEDIR, HERALD_BINDIR, HERALD_UNITDIR; CMAKE_INSTALL_PREFIX.
function(herald_full out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

set(PROJECT_VERSION "${HERALD_VERSION}")
if(IS_ABSOLUTE "${HERALD_LIBDIR}")
  set(HERALD_PC_LIBDIR "${HERALD_LIBDIR}")
else()
  set(HERALD_PC_LIBDIR "\${prefix}/${HERALD_LIBDIR}")
endif()
if(IS_ABSOLUTE "${HERALD_INCLUDEDIR}")
  set(HERALD_PC_INCLUDEDIR "${HERALD_INCLUDEDIR}")
else()
  set(HERALD_PC_INCLUDEDIR "\${prefix}/${HERALD_INCLUDEDIR}")
endif()
configure_file("${HERALD_SRC}/herald.pc.in" "${HERALD_BIN_DIR}/herald.pc" @ONLY)
herald_full(libdir "${HERALD_LIBDIR}")
file(INSTALL "${HERALD_BIN_DIR}/herald.pc" DESTINATION "${libdir}/pkgconfig")

herald_full(bindir "${HERALD_BINDIR}")
herald_full(unitdir "${HERALD_UNITDIR}")
foreach(unit herald.service herald@.service)
  file(READ "${HERALD_SRC}/${unit}" text)
  string(REPLACE "/usr/local/bin/herald" "${bindir}/herald" text "${text}")
  file(WRITE "${HERALD_BIN_DIR}/${unit}" "${text}")
  file(INSTALL "${HERALD_BIN_DIR}/${unit}" DESTINATION "${unitdir}")
endforeach()
