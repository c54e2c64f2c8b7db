"""Short alt texts in 31 languages: the test data of the language check (rule 10).

Written for this corpus as natural alt texts of 4 to 20 words (the length the rule judges),
with the cases that trip an identifier: close languages (no/da/sv, es/gl/ca/pt, hr/sr/bs, cs),
non-Latin scripts (Cyrillic, Greek, Arabic, Hebrew, Devanagari, Han, kana, Hangul, Thai), brand
and place names ("Yamaha", "Coca-Cola", "New York"), numbers, and four-word texts. Keys are the
BCP 47 tags a caller sends (``nb`` for Norwegian Bokmål; ``sr`` in both of its scripts).

Each text is checked as its own tag (it must pass) and as two wrong tags (it must fail), see
:func:`cases`; ``language_table.py`` measures and renders the table in docs/quality.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from alttext.describe.rules.language import close_languages

CORPUS: dict[str, tuple[str, ...]] = {
    "en": (
        "Red motorcycle parked on a grassy verge.",
        "Tabby cat asleep on a sunlit windowsill.",
        "Blue women's trail running shoe with a thick lugged sole, side view.",
        "Bar chart of quarterly revenue in 2025, rising from $1.2M to $2.0M.",
        "Two hikers crossing a wooden bridge over a mountain stream.",
        "Screenshot of the login page with an error message under the password field.",
        "Fresh sourdough loaf on a wooden cutting board next to a bread knife.",
        "Yamaha sport bike on a race track, leaning into a corner.",
        "Map of Europe with the Schengen area shaded in green.",
        "Children playing football in a park at sunset.",
        "Steaming cup of coffee beside an open notebook and a pen.",
        "Aerial view of a harbour with fishing boats and colourful houses.",
        "Red Yamaha motorcycle outdoors.",
        "Golden retriever catching a frisbee on the beach.",
        "Nike Air Max sneakers, white and red.",
        "Coca-Cola logo on a delivery truck.",
        "Screenshot of Microsoft Excel with a pivot table.",
        "Dog sleeping on sofa.",
        "New York skyline at dusk.",
        "Mount Fuji behind Lake Kawaguchi in spring.",
        "iPhone 15 lying face down on a desk.",
        "Close-up of a bee on lavender.",
        "Croissant and café au lait on a bistro table.",
        "Sushi platter with salmon nigiri and maki rolls.",
        "Pasta carbonara with pancetta and parmesan in a white bowl.",
        "Toyota Corolla parked outside a McDonald's in Tokyo.",
    ),
    "de": (
        "Rotes Motorrad auf einem Grünstreifen am Straßenrand geparkt.",
        "Getigerte Katze schläft auf einer sonnigen Fensterbank.",
        "Balkendiagramm des Quartalsumsatzes 2025, steigend von 1,2 auf 2,0 Millionen Euro.",
        "Zwei Wanderer überqueren eine Holzbrücke über einen Gebirgsbach.",
        "Frisch gebackenes Sauerteigbrot auf einem Holzbrett neben einem Brotmesser.",
        "Screenshot der Anmeldeseite mit einer Fehlermeldung unter dem Passwortfeld.",
        "Rotes Yamaha-Motorrad im Freien.",
        "Screenshot von Microsoft Excel mit einer Pivot-Tabelle.",
        "Weiße Nike Air Max Sneaker mit roten Streifen.",
        "Hund schläft auf Sofa.",
        "Der Kölner Dom bei Nacht.",
        "Screenshot der Website mit Login-Button und Cookie-Banner.",
        "Team-Meeting im Büro, fünf Personen am Laptop.",
    ),
    "fr": (
        "Moto rouge garée sur le bas-côté herbeux d'une route.",
        "Chat tigré endormi sur un rebord de fenêtre ensoleillé.",
        "Deux randonneurs traversent un pont en bois au-dessus d'un torrent.",
        "Graphique en barres du chiffre d'affaires trimestriel 2025, en hausse constante.",
        "Tour Eiffel illuminée la nuit, vue depuis les jardins du Trocadéro.",
        "Tasse de café fumante à côté d'un carnet ouvert et d'un stylo.",
        "Capture d'écran de Microsoft Excel avec un tableau croisé dynamique.",
        "Baskets Nike Air Max blanches à bandes rouges.",
        "Chien endormi sur canapé.",
        "Gros plan d'une abeille sur de la lavande.",
        "Logo de la marque Apple sur un MacBook Pro argenté.",
        "Bol de ramen avec œuf, porc et algues.",
    ),
    "es": (
        "Moto roja aparcada en el arcén de una carretera rural.",
        "Gato atigrado dormido en el alféizar de una ventana soleada.",
        "Dos excursionistas cruzan un puente de madera sobre un arroyo de montaña.",
        "Gráfico de barras de los ingresos trimestrales de 2025, que crecen cada trimestre.",
        "Niños jugando al fútbol en un parque al atardecer.",
        "Pan de masa madre recién horneado sobre una tabla de cortar de madera.",
        "Captura de pantalla de Microsoft Excel con una tabla dinámica.",
        "Perro dormido en sofá.",
        "Lionel Messi celebrando un gol con el FC Barcelona.",
        "Estadio Santiago Bernabéu lleno durante un partido del Real Madrid.",
    ),
    "gl": (
        "Moto vermella aparcada na beira dunha estrada con herba.",
        "Gato durmindo no peitoril dunha fiestra ao sol.",
        "Dous camiñantes cruzan unha ponte de madeira sobre un regato.",
        "Vista aérea dun porto con barcos de pesca e casas de cores.",
        "Cunca de café quente xunto a un caderno aberto e un bolígrafo.",
    ),
    "ca": (
        "Moto vermella aparcada al voral herbós d'una carretera.",
        "Gat ratllat adormit a l'ampit d'una finestra assolellada.",
        "Dos excursionistes travessen un pont de fusta sobre un rierol de muntanya.",
        "Nens jugant a futbol en un parc a la posta de sol.",
        "Pa de massa mare acabat de fer sobre una post de tallar de fusta.",
    ),
    "pt": (
        "Mota vermelha estacionada na berma relvada de uma estrada.",
        "Gato malhado a dormir no parapeito de uma janela ensolarada.",
        "Dois caminhantes atravessam uma ponte de madeira sobre um riacho.",
        "Gráfico de barras da receita trimestral de 2025, sempre em crescimento.",
        "Crianças a jogar futebol num parque ao pôr do sol.",
        "Vista de São Paulo ao entardecer.",
        "Logótipo da Vodafone numa loja em Lisboa.",
    ),
    "it": (
        "Moto rossa parcheggiata sul ciglio erboso di una strada.",
        "Gatto tigrato addormentato sul davanzale di una finestra soleggiata.",
        "Due escursionisti attraversano un ponte di legno sopra un torrente di montagna.",
        "Grafico a barre del fatturato trimestrale 2025, in crescita costante.",
        "Tazza di caffè fumante accanto a un quaderno aperto e una penna.",
        "Logo Coca-Cola su un camion delle consegne.",
        "Cane che dorme sul divano.",
        "Selfie di gruppo davanti al Colosseo.",
    ),
    "nl": (
        "Rode motor geparkeerd in de berm naast een landweg.",
        "Gestreepte kat slaapt op een zonnige vensterbank.",
        "Twee wandelaars steken een houten brug over een bergbeek over.",
        "Staafdiagram van de kwartaalomzet in 2025, die elk kwartaal stijgt.",
        "Kinderen spelen voetbal in een park bij zonsondergang.",
        "Hond slaapt op bank.",
        "Screenshot van de homepage met een zoekbalk.",
    ),
    "nb": (
        "Rød motorsykkel parkert i veikanten på en gresskledd skråning.",
        "Stripete katt som sover i en solfylt vinduskarm.",
        "To turgåere krysser en trebro over en fjellbekk.",
        "Søylediagram over kvartalsvis omsetning i 2025, som øker hvert kvartal.",
        "Barn som spiller fotball i en park ved solnedgang.",
    ),
    "da": (
        "Rød motorcykel parkeret i rabatten langs en landevej.",
        "Stribet kat sover i en solbeskinnet vindueskarm.",
        "To vandrere går over en træbro over en bjergbæk.",
        "Børn spiller fodbold i en park ved solnedgang.",
        "Friskbagt surdejsbrød på et skærebræt af træ ved siden af en brødkniv.",
    ),
    "sv": (
        "Röd motorcykel parkerad vid en gräsbevuxen vägkant.",
        "Randig katt som sover i ett soligt fönster.",
        "Två vandrare går över en träbro över en fjällbäck.",
        "Stapeldiagram över kvartalsintäkter 2025 som ökar för varje kvartal.",
        "Barn som spelar fotboll i en park i solnedgången.",
        "Hund sover i soffan.",
    ),
    "fi": (
        "Punainen moottoripyörä pysäköitynä nurmikkoiselle tienpientareelle.",
        "Raidallinen kissa nukkuu aurinkoisella ikkunalaudalla.",
        "Kaksi retkeilijää ylittää puusillan vuoristopuron yli.",
        "Pylväskaavio vuoden 2025 liikevaihdosta, joka kasvaa joka neljännes.",
        "Lapset pelaavat jalkapalloa puistossa auringonlaskun aikaan.",
    ),
    "pl": (
        "Czerwony motocykl zaparkowany na trawiastym poboczu drogi.",
        "Pręgowany kot śpi na nasłonecznionym parapecie.",
        "Dwóch turystów przechodzi przez drewniany most nad górskim potokiem.",
        "Wykres słupkowy kwartalnych przychodów w 2025 roku, rosnących z każdym kwartałem.",
        "Dzieci grają w piłkę nożną w parku o zachodzie słońca.",
        "Pies śpi na kanapie.",
    ),
    "cs": (
        "Červená motorka zaparkovaná na travnaté krajnici silnice.",
        "Mourovatá kočka spí na slunném parapetu okna.",
        "Dva turisté přecházejí dřevěný most přes horský potok.",
        "Děti hrají fotbal v parku při západu slunce.",
        "Čerstvě upečený kváskový chléb na dřevěném prkénku vedle nože.",
    ),
    "hr": (
        "Crveni motocikl parkiran na travnatom rubu ceste.",
        "Prugasta mačka spava na sunčanoj prozorskoj dasci.",
        "Dvoje planinara prelazi drveni most preko planinskog potoka.",
        "Djeca igraju nogomet u parku u sumrak.",
        "Šalica vruće kave pokraj otvorene bilježnice i olovke.",
    ),
    "sr": (
        "Црвени мотоцикл паркиран на травнатој ивици пута.",
        "Пругаста мачка спава на сунчаној прозорској дасци.",
        "Два планинара прелазе дрвени мост преко планинског потока.",
        "Деца играју фудбал у парку у сумрак.",
        "Шоља вруће кафе поред отворене свеске и оловке.",
        "Deca igraju fudbal u parku pri zalasku sunca.",
    ),
    "bs": (
        "Crveni motocikl parkiran na travnatoj ivici puta.",
        "Mačka spava na prozoru obasjanom suncem.",
        "Dvojica planinara prelaze drveni most preko planinskog potoka.",
        "Djeca igraju fudbal u parku u sumrak.",
        "Šoljica tople kahve pored otvorene sveske i olovke.",
    ),
    "tr": (
        "Yol kenarındaki çimenlere park edilmiş kırmızı bir motosiklet.",
        "Güneşli bir pencere pervazında uyuyan tekir kedi.",
        "İki yürüyüşçü bir dağ deresinin üzerindeki ahşap köprüden geçiyor.",
        "2025 yılı çeyreklik gelirlerini gösteren, her çeyrekte artan çubuk grafik.",
        "Gün batımında parkta futbol oynayan çocuklar.",
    ),
    "hu": (
        "Piros motorkerékpár parkol egy füves útszélen.",
        "Cirmos macska alszik egy napsütötte ablakpárkányon.",
        "Két túrázó átkel egy fahídon egy hegyi patak fölött.",
        "Gyerekek fociznak egy parkban naplementekor.",
        "Gőzölgő kávéscsésze egy nyitott jegyzetfüzet és egy toll mellett.",
    ),
    "ru": (
        "Красный мотоцикл припаркован на травянистой обочине дороги.",
        "Полосатый кот спит на солнечном подоконнике.",
        "Двое туристов переходят деревянный мост через горный ручей.",
        "Столбчатая диаграмма квартальной выручки за 2025 год, растущей каждый квартал.",
        "Дети играют в футбол в парке на закате.",
    ),
    "uk": (
        "Червоний мотоцикл припаркований на трав'янистому узбіччі дороги.",
        "Смугастий кіт спить на сонячному підвіконні.",
        "Двоє туристів переходять дерев'яний міст через гірський струмок.",
        "Діти грають у футбол у парку на заході сонця.",
        "Чашка гарячої кави поруч із відкритим блокнотом і ручкою.",
    ),
    "el": (
        "Κόκκινη μοτοσικλέτα σταθμευμένη στο χορταριασμένο άκρο του δρόμου.",
        "Ριγέ γάτα κοιμάται σε ένα ηλιόλουστο περβάζι.",
        "Δύο πεζοπόροι διασχίζουν μια ξύλινη γέφυρα πάνω από ένα ρέμα.",
        "Παιδιά παίζουν ποδόσφαιρο σε ένα πάρκο στο ηλιοβασίλεμα.",
        "Αεροφωτογραφία λιμανιού με ψαροκάικα και πολύχρωμα σπίτια.",
    ),
    "ar": (
        "دراجة نارية حمراء متوقفة على جانب طريق عشبي.",
        "قطة مخططة نائمة على حافة نافذة مشمسة.",
        "اثنان من المتنزهين يعبران جسراً خشبياً فوق جدول جبلي.",
        "أطفال يلعبون كرة القدم في حديقة عند غروب الشمس.",
        "فنجان قهوة ساخن بجانب دفتر مفتوح وقلم.",
    ),
    "he": (
        "אופנוע אדום חונה בשולי דרך מכוסים בדשא.",
        "חתול מפוספס ישן על אדן חלון שטוף שמש.",
        "שני מטיילים חוצים גשר עץ מעל נחל הררי.",
        "ילדים משחקים כדורגל בפארק בשקיעה.",
        "כוס קפה חם ליד מחברת פתוחה ועט.",
    ),
    "hi": (
        "सड़क के किनारे घास पर खड़ी लाल मोटरसाइकिल।",
        "धूप वाली खिड़की की चौखट पर सोती हुई धारीदार बिल्ली।",
        "दो पर्यटक पहाड़ी नाले पर बने लकड़ी के पुल को पार कर रहे हैं।",
        "सूर्यास्त के समय पार्क में फुटबॉल खेलते बच्चे।",
        "खुली नोटबुक और पेन के पास गरम कॉफ़ी का कप।",
    ),
    "ja": (
        "草の生えた道端に停めてある赤いオートバイ。",
        "日当たりのよい窓辺で眠るトラ猫。",
        "山の小川にかかる木の橋を渡る二人のハイカー。",
        "夕暮れの公園でサッカーをする子どもたち。",
        "開いたノートとペンの横に置かれた湯気の立つコーヒー。",
        "Microsoft Excelのピボットテーブルのスクリーンショット。",
    ),
    "zh": (
        "停在长满青草的路边的红色摩托车。",
        "在阳光明媚的窗台上睡觉的虎斑猫。",
        "两名徒步者走过山间小溪上的木桥。",
        "日落时分在公园里踢足球的孩子们。",
        "2025年季度收入柱状图，每个季度都在增长。",
    ),
    "ko": (
        "풀이 난 길가에 세워진 빨간 오토바이.",
        "햇살이 드는 창턱에서 자고 있는 줄무늬 고양이.",
        "산속 개울 위의 나무 다리를 건너는 두 명의 등산객.",
        "해 질 녘 공원에서 축구를 하는 아이들.",
        "펼쳐진 공책과 펜 옆에 놓인 김이 나는 커피 한 잔.",
    ),
    "th": (
        "รถจักรยานยนต์สีแดงจอดอยู่ริมถนนที่มีหญ้าขึ้น",
        "แมวลายนอนหลับอยู่บนขอบหน้าต่างที่มีแดดส่อง",
        "นักเดินป่าสองคนกำลังข้ามสะพานไม้เหนือลำธารบนภูเขา",
        "เด็ก ๆ เล่นฟุตบอลในสวนสาธารณะตอนพระอาทิตย์ตก",
        "ถ้วยกาแฟร้อนวางข้างสมุดที่เปิดอยู่และปากกา",
    ),
    "vi": (
        "Xe máy màu đỏ đỗ bên lề đường phủ cỏ.",
        "Con mèo vằn đang ngủ trên bậu cửa sổ đầy nắng.",
        "Hai người đi bộ đường dài băng qua cây cầu gỗ bắc qua suối.",
        "Trẻ em chơi bóng đá trong công viên lúc hoàng hôn.",
        "Tách cà phê nóng bên cạnh cuốn sổ đang mở và cây bút.",
    ),
}


@dataclass(frozen=True)
class Case:
    """One judgement: ``text``, written in ``written_in``, requested as ``requested``."""

    text: str
    written_in: str
    requested: str

    @property
    def right(self) -> bool:
        return self.written_in == self.requested


def _not_close(written_in: str) -> list[str]:
    return [tag for tag in CORPUS if not close(written_in, tag)]


def close(a: str, b: str) -> bool:
    """Whether two corpus tags share a close group of the rule (so they may pass each other)."""
    return label(b) in close_languages(label(a))


def label(tag: str) -> str:
    """The identifier's name for a corpus tag (no model needed: only Norwegian differs)."""
    return "no" if tag == "nb" else tag


def cases() -> list[Case]:
    """Every text as its own tag, and as two wrong tags outside its close group.

    The wrong tags model the slips that happen: a non-English text requested as ``en`` (a page
    in German leaking into an English request) and as a rotating other language; an English
    text as two rotating languages (the model answering English when asked for German)."""
    out: list[Case] = []
    for li, (tag, texts) in enumerate(CORPUS.items()):
        others = _not_close(tag)
        for k, text in enumerate(texts):
            out.append(Case(text, tag, tag))
            first = "en" if tag != "en" else others[(5 * k) % len(others)]
            pick = (7 * k + 3 * li + 1) % len(others)
            second = others[pick] if others[pick] != first else others[(pick + 1) % len(others)]
            out += [Case(text, tag, first), Case(text, tag, second)]
    return out


def close_cases() -> list[Case]:
    """Each text as every close language of the corpus: reported, not scored (they may pass)."""
    return [
        Case(text, tag, other)
        for tag, texts in CORPUS.items()
        for other in CORPUS
        if other != tag and close(tag, other)
        for text in texts
    ]
