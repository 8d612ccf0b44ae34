# IDS verdicts over Redis pub/sub (hiredis) and the Suricata eve.json
# follower that turns IDS events into verdict requests. The Redis transport
# is built when hiredis is found (WEIR_HAVE_VERDICT_REDIS, public so that
# tools and tests can offer it); the eve follower has no extra dependency.
target_sources(weir_dataplane PRIVATE src/eve_follower.cpp)
pkg_check_modules(WEIR_HIREDIS IMPORTED_TARGET hiredis)
if(WEIR_HIREDIS_FOUND)
  target_sources(weir_dataplane PRIVATE src/verdict_redis.cpp)
  target_link_libraries(weir_dataplane PRIVATE PkgConfig::WEIR_HIREDIS)
  target_compile_definitions(weir_dataplane PUBLIC WEIR_HAVE_VERDICT_REDIS=1)
endif()
