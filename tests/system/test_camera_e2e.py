"""A camera over the scale, end to end: the daemon judges the QR codes a recording shows."""


from simulators.camera import LOOKS, MjpegStream, Shot, make_video, shot_frames
from simulators.dataset import demo_cylinders, qr_url
from simulators.harness import OPERATORS, RigSpec, SimStation, wait_for
from station.today import station_today

CYL = demo_cylinders(station_today())


def test_camera_readings_are_judged_once_each(tmp_path):
    codes = [qr_url(CYL["valid"]["info_code"]), "https://qr.evil.example/c/500112CQ0000000001"]
    video = tmp_path / "scale.avi"  # appears once the station runs: the camera "comes up"
    st = SimStation(tmp_path / "station", (RigSpec("rig-01", 1, camera=str(video)),),
                    rig_options={"start_delay_s": None})
    st.workdir.mkdir(parents=True)
    st.start()
    try:
        st.badge("rig-01", OPERATORS[0][1])
        st.place("rig-01")
        make_video(video, codes, size=(640, 480), fps=20, frames_per_code=8)
        rows = wait_for(lambda: (r := st.rows("SELECT * FROM decisions WHERE reader = "
                                              "'rig-01-camera' ORDER BY id")) and
                        {d["reason"] for d in r} >= {None, "TAG_FOREIGN"} and r, 20,
                        "the camera's codes judged")
        judged = [(d["kind"], d["reason"]) for d in rows]
        assert ("qr_url", None) in judged and ("invalid", "TAG_FOREIGN") in judged
        valid = [d for d in rows if d["cylinder_id"] == "CYL-000001"]
        assert valid and valid[0]["permit"] == 1
        assert len(rows) == 2  # the looping recording shows each code again and again: once
        wait_for(lambda: st.coils("rig-01")["lamp_red"], 5, "the last verdict shown")
        assert st.stop_daemon() == 0  # SIGTERM with the camera replaying: a clean exit
    finally:
        st.stop()


def test_a_live_camera_judges_only_the_one_code_of_the_cylinder_standing_there(tmp_path):
    """A network camera over the scale (issue 10): a code seen while the scale was empty never
    permits the cylinder put down after it; two codes in view are refused as ambiguous; a
    light-on-dark (etched) code on the cylinder standing there is read and judged, its position
    recorded."""
    valid, overdue = (qr_url(CYL[k]["info_code"]) for k in ("valid", "overdue"))
    frames = {name: list(shot_frames(shots, size=(640, 480))) for name, shots in {
        "empty": [Shot((), 4)],
        "valid": [Shot((valid,), 8)],
        "two": [Shot((overdue, valid), 8)],
        "inverted": [Shot((valid,), 8, LOOKS["inverted"])],
    }.items()}
    with MjpegStream(frames["empty"], fps=20) as camera:
        st = SimStation(tmp_path, (RigSpec("rig-01", 1, camera=camera.url,
                                           camera_roi=(0, 0, 640, 480)),),
                        rig_options={"start_delay_s": None}).start()
        try:
            st.badge("rig-01", OPERATORS[0][1])
            voids = st.log_path.read_text(encoding="utf-8").count("event=reading_void")
            camera.show(frames["valid"])  # carried past the empty scale, in full view
            wait_for(lambda: st.log_path.read_text(encoding="utf-8").count(
                "event=reading_void") > voids, 10, "the code over the empty scale void")
            camera.show(frames["empty"])
            since = st.last_id()
            st.place("rig-01")  # a cylinder whose own tag the camera cannot see
            wait_for(lambda: st.live("rig-01").get("present"), 5, "the cylinder seen")
            assert not st.coils("rig-01")["permit"] and st.last_id() == since

            camera.show(frames["two"])  # its overdue tag and a valid neighbour's in view
            d = st.wait_decision("rig-01", since)
            assert (d["permit"], d["reason"]) == (0, "AMBIGUOUS_TAGS")
            assert not st.coils("rig-01")["permit"]
            assert not st.rows("SELECT * FROM decisions WHERE permit = 1")

            camera.show(frames["empty"])
            st.remove("rig-01")
            since = st.last_id()
            st.place("rig-01")
            camera.show(frames["inverted"])  # a laser-etched tag: light on dark
            d = st.wait_decision("rig-01", since)
            assert (d["permit"], d["cylinder_id"]) == (1, "CYL-000001")
            assert "code at x,y,w,h" in d["detail"]
            wait_for(lambda: st.coils("rig-01")["permit"], 5, "the permit")
        finally:
            st.stop()
