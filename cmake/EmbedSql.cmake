# backfill_embed_sql(<target> <namespace> <file.sql>...)
#
# Embeds each SQL file as `inline constexpr absl::string_view k<CamelName>` in a generated
# header `<target>_sql.h` (include it as "<target>_sql.h"). Each .sql file stays runnable on
# its own with `psql -f`; its first line is a comment naming its parameters.
function(backfill_embed_sql target ns)
  set(header ${CMAKE_CURRENT_BINARY_DIR}/${target}_sql.h)
  set(inputs)
  foreach(f ${ARGN})
    list(APPEND inputs ${CMAKE_CURRENT_SOURCE_DIR}/${f})
  endforeach()
  string(REPLACE ";" "|" inputs_arg "${inputs}")
  add_custom_command(
    OUTPUT ${header}
    COMMAND ${CMAKE_COMMAND} -DOUT=${header} -DNS=${ns} "-DINPUTS=${inputs_arg}"
            -P ${PROJECT_SOURCE_DIR}/cmake/EmbedSqlScript.cmake
    DEPENDS ${inputs} ${PROJECT_SOURCE_DIR}/cmake/EmbedSqlScript.cmake
    COMMENT "Embedding SQL for ${target}"
    VERBATIM)
  add_custom_target(${target}_sql DEPENDS ${header})
  add_dependencies(${target} ${target}_sql)
  target_include_directories(${target} PUBLIC ${CMAKE_CURRENT_BINARY_DIR})
endfunction()
