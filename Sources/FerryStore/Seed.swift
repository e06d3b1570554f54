// Generated from hub/seed/ by scripts/gen-seed.py (not formatted); SeedTests checks it matches. Do not edit.

/// Seed data shipped with Ferry: the province's communes, the land-record form and its campaign.
public enum Seed {
    /// hub/seed/lam-dong-communes.csv
    public static let communesCSV = #"""
    code,name,kind,codename
    24781,Phường Xuân Hương - Đà Lạt,phường,phuong_xuan_huong_da_lat
    24787,Phường Cam Ly - Đà Lạt,phường,phuong_cam_ly_da_lat
    24778,Phường Lâm Viên - Đà Lạt,phường,phuong_lam_vien_da_lat
    24805,Phường Xuân Trường - Đà Lạt,phường,phuong_xuan_truong_da_lat
    24846,Phường Lang Biang - Đà Lạt,phường,phuong_lang_biang_da_lat
    24823,Phường 1 Bảo Lộc,phường,phuong_1_bao_loc
    24820,Phường 2 Bảo Lộc,phường,phuong_2_bao_loc
    24841,Phường 3 Bảo Lộc,phường,phuong_3_bao_loc
    24829,Phường B'Lao,phường,phuong_blao
    24848,Xã Lạc Dương,xã,xa_lac_duong
    24931,Xã Đơn Dương,xã,xa_don_duong
    24943,Xã Ka Đô,xã,xa_ka_do
    24955,Xã Quảng Lập,xã,xa_quang_lap
    24934,Xã D'Ran,xã,xa_dran
    24967,Xã Hiệp Thạnh,xã,xa_hiep_thanh
    24958,Xã Đức Trọng,xã,xa_duc_trong
    24976,Xã Tân Hội,xã,xa_tan_hoi
    24991,Xã Tà Hine,xã,xa_ta_hine
    24988,Xã Tà Năng,xã,xa_ta_nang
    24871,Xã Đinh Văn Lâm Hà,xã,xa_dinh_van_lam_ha
    24895,Xã Phú Sơn Lâm Hà,xã,xa_phu_son_lam_ha
    24883,Xã Nam Hà Lâm Hà,xã,xa_nam_ha_lam_ha
    24868,Xã Nam Ban Lâm Hà,xã,xa_nam_ban_lam_ha
    24916,Xã Tân Hà Lâm Hà,xã,xa_tan_ha_lam_ha
    24907,Xã Phúc Thọ Lâm Hà,xã,xa_phuc_tho_lam_ha
    24886,Xã Đam Rông 1,xã,xa_dam_rong_1
    24877,Xã Đam Rông 2,xã,xa_dam_rong_2
    24875,Xã Đam Rông 3,xã,xa_dam_rong_3
    24853,Xã Đam Rông 4,xã,xa_dam_rong_4
    25000,Xã Di Linh,xã,xa_di_linh
    25036,Xã Hòa Ninh,xã,xa_hoa_ninh
    25042,Xã Hòa Bắc,xã,xa_hoa_bac
    25007,Xã Đinh Trang Thượng,xã,xa_dinh_trang_thuong
    25018,Xã Bảo Thuận,xã,xa_bao_thuan
    25051,Xã Sơn Điền,xã,xa_son_dien
    25015,Xã Gia Hiệp,xã,xa_gia_hiep
    25054,Xã Bảo Lâm 1,xã,xa_bao_lam_1
    25084,Xã Bảo Lâm 2,xã,xa_bao_lam_2
    25093,Xã Bảo Lâm 3,xã,xa_bao_lam_3
    25063,Xã Bảo Lâm 4,xã,xa_bao_lam_4
    25057,Xã Bảo Lâm 5,xã,xa_bao_lam_5
    25099,Xã Đạ Huoai,xã,xa_da_huoai
    25105,Xã Đạ Huoai 2,xã,xa_da_huoai_2
    25114,Xã Đạ Huoai 3,xã,xa_da_huoai_3
    25126,Xã Đạ Tẻh,xã,xa_da_teh
    25138,Xã Đạ Tẻh 2,xã,xa_da_teh_2
    25135,Xã Đạ Tẻh 3,xã,xa_da_teh_3
    25159,Xã Cát Tiên,xã,xa_cat_tien
    25180,Xã Cát Tiên 2,xã,xa_cat_tien_2
    25162,Xã Cát Tiên 3,xã,xa_cat_tien_3
    22933,Phường Hàm Thắng,phường,phuong_ham_thang
    22960,Phường Bình Thuận,phường,phuong_binh_thuan
    22918,Phường Mũi Né,phường,phuong_mui_ne
    22924,Phường Phú Thuỷ,phường,phuong_phu_thuy
    22945,Phường Phan Thiết,phường,phuong_phan_thiet
    22954,Phường Tiến Thành,phường,phuong_tien_thanh
    23235,Phường La Gi,phường,phuong_la_gi
    23231,Phường Phước Hội,phường,phuong_phuoc_hoi
    22963,Xã Tuyên Quang,xã,xa_tuyen_quang
    23246,Xã Tân Hải,xã,xa_tan_hai
    22981,Xã Vĩnh Hảo,xã,xa_vinh_hao
    22969,Xã Liên Hương,xã,xa_lien_huong
    22978,Xã Tuy Phong,xã,xa_tuy_phong
    22972,Xã Phan Rí Cửa,xã,xa_phan_ri_cua
    23005,Xã Bắc Bình,xã,xa_bac_binh
    23041,Xã Hồng Thái,xã,xa_hong_thai
    23020,Xã Hải Ninh,xã,xa_hai_ninh
    23008,Xã Phan Sơn,xã,xa_phan_son
    23023,Xã Sông Lũy,xã,xa_song_luy
    23032,Xã Lương Sơn,xã,xa_luong_son
    23053,Xã Hòa Thắng,xã,xa_hoa_thang
    23074,Xã Đông Giang,xã,xa_dong_giang
    23065,Xã La Dạ,xã,xa_la_da
    23089,Xã Hàm Thuận Bắc,xã,xa_ham_thuan_bac
    23059,Xã Hàm Thuận,xã,xa_ham_thuan
    23086,Xã Hồng Sơn,xã,xa_hong_son
    23098,Xã Hàm Liêm,xã,xa_ham_liem
    23122,Xã Hàm Thạnh,xã,xa_ham_thanh
    23128,Xã Hàm Kiệm,xã,xa_ham_kiem
    23143,Xã Tân Thành,xã,xa_tan_thanh
    23110,Xã Hàm Thuận Nam,xã,xa_ham_thuan_nam
    23134,Xã Tân Lập,xã,xa_tan_lap
    23230,Xã Tân Minh,xã,xa_tan_minh
    23236,Xã Hàm Tân,xã,xa_ham_tan
    23266,Xã Sơn Mỹ,xã,xa_son_my
    23152,Xã Bắc Ruộng,xã,xa_bac_ruong
    23158,Xã Nghị Đức,xã,xa_nghi_duc
    23173,Xã Đồng Kho,xã,xa_dong_kho
    23149,Xã Tánh Linh,xã,xa_tanh_linh
    23188,Xã Suối Kiết,xã,xa_suoi_kiet
    23200,Xã Nam Thành,xã,xa_nam_thanh
    23191,Xã Đức Linh,xã,xa_duc_linh
    23194,Xã Hoài Đức,xã,xa_hoai_duc
    23227,Xã Trà Tân,xã,xa_tra_tan
    23272,Đặc khu Phú Quý,đặc khu,dac_khu_phu_quy
    24611,Phường Bắc Gia Nghĩa,phường,phuong_bac_gia_nghia
    24615,Phường Nam Gia Nghĩa,phường,phuong_nam_gia_nghia
    24617,Phường Đông Gia Nghĩa,phường,phuong_dong_gia_nghia
    24646,Xã Đắk Wil,xã,xa_dak_wil
    24649,Xã Nam Dong,xã,xa_nam_dong
    24640,Xã Cư Jút,xã,xa_cu_jut
    24682,Xã Thuận An,xã,xa_thuan_an
    24664,Xã Đức Lập,xã,xa_duc_lap
    24670,Xã Đắk Mil,xã,xa_dak_mil
    24678,Xã Đắk Sắk,xã,xa_dak_sak
    24697,Xã Nam Đà,xã,xa_nam_da
    24688,Xã Krông Nô,xã,xa_krong_no
    24703,Xã Nâm Nung,xã,xa_nam_nung
    24712,Xã Quảng Phú,xã,xa_quang_phu
    24718,Xã Đắk song,xã,xa_dak_song
    24717,Xã Đức An,xã,xa_duc_an
    24722,Xã Thuận Hạnh,xã,xa_thuan_hanh
    24730,Xã Trường Xuân,xã,xa_truong_xuan
    24637,Xã Tà Đùng,xã,xa_ta_dung
    24631,Xã Quảng Khê,xã,xa_quang_khe
    24748,Xã Quảng Tân,xã,xa_quang_tan
    24739,Xã Tuy Đức,xã,xa_tuy_duc
    24733,Xã Kiến Đức,xã,xa_kien_duc
    24751,Xã Nhân Cơ,xã,xa_nhan_co
    24760,Xã Quảng Tín,xã,xa_quang_tin
    24985,Xã Ninh Gia,xã,xa_ninh_gia
    24620,Xã Quảng Hòa,xã,xa_quang_hoa
    24616,Xã Quảng Sơn,xã,xa_quang_son
    24736,Xã Quảng Trực,xã,xa_quang_truc
    
    """#

    /// hub/seed/land-record.form.json
    public static let landRecordForm = #"""
    {
      "id": "land-record",
      "version": 1,
      "title": "Hồ sơ đất đai",
      "fields": [
        {"name": "owner_name", "type": "string", "label": "Họ tên chủ sử dụng", "required": true, "minLength": 8, "maxLength": 24},
        {"name": "owner_id", "type": "string", "label": "Số định danh cá nhân", "required": true, "digits": 12},
        {"name": "address", "type": "string", "label": "Địa chỉ", "minLength": 16, "maxLength": 48},
        {"name": "parcel_no", "type": "string", "label": "Tờ bản đồ / thửa", "maxLength": 16},
        {"name": "area_m2", "type": "double", "label": "Diện tích (m²)", "min": 40, "max": 5000},
        {"name": "land_use", "type": "string", "label": "Mục đích sử dụng", "choices": ["ONT", "ODT", "CLN", "LUA", "BHK", "RSX"]},
        {"name": "year_granted", "type": "int", "label": "Năm cấp", "min": 1993, "max": 2025},
        {"name": "members", "type": "int", "label": "Số thành viên hộ", "min": 1, "max": 12},
        {"name": "lat", "type": "double", "label": "Vĩ độ", "min": 11.0, "max": 12.5},
        {"name": "lon", "type": "double", "label": "Kinh độ", "min": 107.0, "max": 108.9},
        {"name": "granted_on", "type": "date", "label": "Ngày cấp", "minDate": "1993-01-01", "maxDate": "2025-12-31"},
        {"name": "status", "type": "string", "label": "Trạng thái", "required": true, "choices": ["draft", "submitted", "verified", "needs_fix"]}
      ]
    }
    
    """#

    /// hub/seed/land-2025.campaign.json
    public static let landCampaign = #"""
    {
      "id": "land-2025",
      "title": "Chiến dịch số hóa dữ liệu đất đai 2025",
      "form": "land-record",
      "starts": "2025-08-01",
      "ends": "2027-12-31",
      "status": "active",
      "targets": {}
    }
    
    """#
}
