"""A camera over the scale, end to end: the daemon judges the QR codes a recording shows."""


from simulators.camera import make_video
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
