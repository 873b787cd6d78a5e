# Manual pages (man/manN/*.N, mdoc): compressed into the build tree at
# configure time, with a symbolic link for every other name a section 3 page
# documents (its .Nm lines), so `man pshm_block_attach` finds the page of
# pshm_block_create. Editing a page re-runs the configuration.
find_program(GZIP_EXECUTABLE gzip REQUIRED)
file(GLOB PSHM_MAN_PAGES ${PROJECT_SOURCE_DIR}/man/man?/*.[137])
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PSHM_MAN_PAGES})
file(REMOVE_RECURSE ${PROJECT_BINARY_DIR}/man)
foreach(page ${PSHM_MAN_PAGES})
  get_filename_component(file ${page} NAME)
  string(REGEX REPLACE ".*\\.([137])$" "\\1" section ${file})
  set(dir ${PROJECT_BINARY_DIR}/man/man${section})
  file(MAKE_DIRECTORY ${dir})
  execute_process(COMMAND ${GZIP_EXECUTABLE} -9nc ${page} OUTPUT_FILE ${dir}/${file}.gz
    COMMAND_ERROR_IS_FATAL ANY)
  file(STRINGS ${page} names REGEX "^\\.Nm [a-z_0-9]+ ?,?$")
  foreach(line ${names})
    string(REGEX REPLACE "^\\.Nm ([a-z_0-9]+).*" "\\1" name "${line}")
    if(NOT "${name}.${section}" STREQUAL "${file}" AND NOT EXISTS ${dir}/${name}.${section}.gz)
      file(CREATE_LINK ${file}.gz ${dir}/${name}.${section}.gz SYMBOLIC)
    endif()
  endforeach()
endforeach()
# The section 3 pages and their links go with the development package; the
# CLI's page with the tool, the overview of the design (section 7) with the
# library itself.
install(DIRECTORY ${PROJECT_BINARY_DIR}/man/man3 DESTINATION ${CMAKE_INSTALL_MANDIR}
  COMPONENT dev)
install(DIRECTORY ${PROJECT_BINARY_DIR}/man/man1 DESTINATION ${CMAKE_INSTALL_MANDIR}
  COMPONENT tools)
install(DIRECTORY ${PROJECT_BINARY_DIR}/man/man7 DESTINATION ${CMAKE_INSTALL_MANDIR}
  COMPONENT dev)
